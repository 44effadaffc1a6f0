"""A tiny experiment config (seconds, not minutes) over the shipped one: few identities, tiny packs,
a few pretraining steps, three arms. Written into a temporary folder by :func:`write_tiny`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fr_data.io.config import deep_merge
from tests.repo import ROOT

SHIPPED = ROOT / "configs" / "experiments" / "hard_samples.yaml"
TRAIN = {"data": {"batch_size": 16, "num_workers": 0}, "model": {"embedding_size": 16},
         "schedule": {"warmup_steps": 1}}

BODY: dict[str, Any] = {
    "seeds": [0],
    "synth": {"identities": 16, "images_per_identity": 10},
    "packs": {"pairs": 200, "identities": 8},  # 100 impostor pairs: TPR at FPR 1e-2 is defined
    "per_shard": 100,
    "pretrain": {"config": str(ROOT / "configs" / "synth_tiny_cosface.yaml"),
                 "overrides": deep_merge(TRAIN, {"train": {"max_steps": 8, "log_every": 4, "ckpt_every": 4}})},
    "mining": str(ROOT / "configs" / "mining_demo.yaml"),
    "finetune": {"config": str(ROOT / "configs" / "synth_tiny.yaml"), "images": 240,
                 "overrides": deep_merge(TRAIN, {"train": {"log_every": 2, "ckpt_every": 4}})},
    "arms": {"ddl": {"train": {"data": {"composer": {
        "identities": 3, "pairs": 2,
        "hard": [{"source": "variation", "where": "split <> 'hard'"}]}}}}},  # plumbing, not quality
    "evaluation": {"bootstrap": 50},
}
#: The shipped config's sizes merge over the file, so the tiny settings are both sizes.
TINY: dict[str, Any] = {"base": str(SHIPPED), "sizes": {"small": BODY, "full": BODY}}
ARMS = ["baseline", "clean", "ddl"]


def write_tiny(folder: Path, **changes: Any) -> Path:
    """The tiny config (with ``changes`` merged over both sizes) as ``folder/tiny.yaml``."""
    path = folder / "tiny.yaml"
    body = deep_merge(BODY, changes)
    path.write_text(yaml.safe_dump({**TINY, "sizes": {"small": body, "full": body}}))
    return path
