"""Benchmark: the demo's mining quality with the default (calibrated) mining config on several backbones.

    python benchmarks/bench_demo_backbones.py --work DIR [--size small|full] [--seed S] [--steps S]
        [--backbones demo,arcface,...]

For each backbone (:data:`BACKBONES`: the demo's own CosFace ``tiny`` 64-d, the same with an ArcFace head,
with 128-d embeddings, and a ``mobilefacenet``) the demo pipeline (``hardmine.pipelines.demo``: synth ->
shards -> train -> embed -> mine -> evaluate) runs into ``DIR/NAME`` (reuse ``DIR`` to resume or re-score:
finished stages are skipped), then the same embeddings are mined once per mining config of
:data:`MINING` into ``DIR/NAME/mined_TAG`` and scored against the synthetic ground truth
(``fr_data.mining.groundtruth``): mislabel, duplicate and merge precision / recall, and whether the demo's
targets (``TARGETS``) are met. One table row per backbone and mining config.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model

from fr_data.folders.shard_folder import samples_path
from fr_data.io.config import load_config
from fr_data.io.shipped import config_file
from fr_data.mining import MiningConfig, mine
from fr_data.mining.groundtruth import TARGETS, check_targets, score_run
from hardmine.pipelines.demo import Layout, demo_config, run_demo

#: Backbone name -> (training YAML, overrides merged over the demo's own training overrides).
BACKBONES: dict[str, tuple[str, dict[str, Any]]] = {
    "demo": ("synth_tiny_cosface.yaml", {}),
    "arcface": ("synth_tiny.yaml", {}),
    "emb128": ("synth_tiny_cosface.yaml", {"model": {"embedding_size": 128}}),
    "mobilefacenet": ("synth_tiny_cosface.yaml", {"model": {"name": "mobilefacenet", "embedding_size": 128}}),
}

def _no_pixel_check() -> MiningConfig:
    cfg = MiningConfig()
    cfg.duplicates.pixel_min = None
    return cfg


#: Mining config tag -> how to build it: the default (calibrated thresholds, pixel check of duplicate
#: candidates), the default without the pixel check, and the old hand-set demo thresholds.
MINING: dict[str, Callable[[], MiningConfig]] = {
    "default": MiningConfig,
    "no_pixel_check": _no_pixel_check,
    "mining_demo": lambda: load_config(config_file("mining_demo.yaml"), MiningConfig),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True, help="work folder (kept: rerun to resume or re-score)")
    p.add_argument("--size", choices=["small", "full"], default="small", help="demo size (default small)")
    p.add_argument("--seed", type=int, default=0, help="data set / training seed")
    p.add_argument("--steps", type=int, help="training steps (default: the size's)")
    p.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated names of BACKBONES")
    p.add_argument("--mining", default=",".join(MINING), help="comma-separated tags of MINING")
    return p


def score(layout: Layout, tag: str) -> dict[str, float]:
    """Mine ``layout.emb`` with the ``tag`` config and score it; the metrics and targets met."""
    run = layout.out / f"mined_{tag}"
    attributes = layout.synth / "attributes.parquet"
    mine(layout.emb, run, MINING[tag](), samples=samples_path(layout.shards), attributes=attributes,
         overwrite=True)
    metrics = score_run(run, attributes, samples_path(layout.shards)).metrics()
    met = check_targets(metrics)
    mining = [k for k in TARGETS if k.split("_")[0] in ("mislabel", "duplicate", "merge")]
    return {**metrics, "mining_targets_met": float(all(met[k] for k in mining))}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}")
    print("| backbone | mining config | mislabel P / R | duplicate P / R | merge P / R | mining targets met |")
    print("|---|---|---|---|---|---|")
    for name in args.backbones.split(","):
        train_config, overrides = BACKBONES[name]
        cfg = demo_config(args.size, seed=args.seed, steps=args.steps, train_config=str(config_file(train_config)),
                          train_overrides=overrides)
        run_demo(cfg, args.work / name, log=lambda line: None)
        for tag in args.mining.split(","):
            m = score(Layout(args.work / name), tag)
            print(f"| {name} | {tag} | {m['mislabel_precision']:.3f} / {m['mislabel_recall']:.3f} | "
                  f"{m['duplicate_precision']:.3f} / {m['duplicate_recall']:.3f} | "
                  f"{m['merge_precision']:.3f} / {m['merge_recall']:.3f} | "
                  f"{'yes' if m['mining_targets_met'] else 'no'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
