"""Benchmark: mining quality against the synthetic ground truth with a backbone trained on synthetic faces.

    python benchmarks/bench_mining_quality.py [--small] [--work DIR] [--identities N]
        [--images-per-identity M] [--steps S] [--seed S] [--train-config YAML] [--mining-config YAML]

Runs the demo pipeline (``hardmine.pipelines.demo``: synth -> shards -> train -> embed -> mine -> evaluate) at the
requested size into ``--work`` (a temporary folder by default; reuse a folder to resume or to re-score),
then prints issue 3 point 6's figures against their targets: mislabel precision / recall (5% injected
noise), duplicate precision / recall, merge-candidate recall, hard-split enrichment over the base rate,
resolution-estimate Spearman and the pose proxy's Spearman, plus the verification accuracies of the
trained backbone, the stage timings and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _demo_args import demo_parser  # noqa: E402
from _machine import cpu_model as cpu_model  # noqa: E402

from hardmine.pipelines.demo import demo_config, run_demo  # noqa: E402




def build_parser() -> argparse.ArgumentParser:
    p = demo_parser(__doc__)
    p.add_argument("--identities", type=int, help="training identities")
    p.add_argument("--images-per-identity", type=int, help="images per identity")
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--train-config", help="training YAML")
    p.add_argument("--mining-config", help="mining YAML")
    return p


def configure(args: argparse.Namespace):
    """The demo config the arguments ask for."""
    return demo_config("small" if args.small else "full", seed=args.seed, steps=args.steps,
                       identities=args.identities, images_per_identity=args.images_per_identity,
                       train_config=args.train_config, mining_config=args.mining_config)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = configure(args)
    with tempfile.TemporaryDirectory(prefix="bench_mining_quality_") as tmp:
        work = args.work or Path(tmp) / "demo"
        summary = run_demo(cfg, work, log=lambda line: None)
        table = json.loads((work / "evaluation.json").read_text())["mining_quality_table"]
    s = cfg.synth
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}")
    print(f"data: {s.identities} identities x {s.images_per_identity} images, "
          f"mislabel rate {s.mislabel_rate}, "
          f"duplicate rate {s.duplicate_rate}, split-identity rate {s.split_identity_rate}; "
          f"{summary['counts']['synth']['num_images']} images")
    train = summary["counts"]["train"]
    print(f"training: {train['steps']} steps, final loss {train['final_loss']:.3f}, "
          f"config {cfg.train_config}, overrides {cfg.train_overrides}")
    print("stage seconds: " + ", ".join(f"{k} {v['seconds']:.1f}" + (" (reused)" if v["skipped"] else "")
                                        for k, v in summary["stages"].items()))
    accuracy = summary["verification_accuracy"]
    print("verification accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    print(table)
    met = summary["targets_met"]
    print(f"targets met: {sum(met.values())}/{len(met)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
