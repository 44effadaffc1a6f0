"""The tiny end-to-end demo run shared by the demo tests and the review-page browser tests.

Registered in ``tests/conftest.py`` as the session fixture ``tiny_demo`` (built once: about 20 s on two
cores), returning ``(out folder, summary, printed text)``.
"""

from __future__ import annotations

import pytest

from fr_data.synth import SynthConfig
from hardmine.pipelines.demo import DemoConfig, run_demo

TINY = DemoConfig(
    synth=SynthConfig(identities=12, images_per_identity=6, holdout_identities=4, pairs=20,
                      split_identity_rate=0.1, duplicate_rate=0.05),
    workers=1, per_shard=40, embed_batch=32,
    train_overrides={"data": {"batch_size": 16, "num_workers": 0},
                     "train": {"max_steps": 4, "log_every": 2, "ckpt_every": 0},
                     "schedule": {"warmup_steps": 1}},
)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    lines: list[str] = []
    summary = run_demo(TINY, out, log=lines.append)
    return out, summary, "\n".join(lines)
