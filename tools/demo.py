"""End-to-end demo on synthetic faces: synth, shard, train, embed, mine, evaluate, query.

Examples::

    python tools/demo.py --out demo            # the README demo (a few minutes on 2 CPU cores)
    python tools/demo.py --out demo-small --small   # about a minute

Rerun the same command to resume: every finished stage is skipped. Prints the DuckDB query results and a
summary (also written to OUT/summary.json). Exit codes: 0 ok, 2 bad input or config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fr_data.errors import HardmineError  # noqa: E402
from fr_train.demo import DEMO_SIZES, run_demo, with_overrides  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder (created; reused to resume)")
    p.add_argument("--small", action="store_true", help="the ~1 minute size instead of the full demo")
    p.add_argument("--workers", type=int, help="rendering/sharding processes (default 2)")
    p.add_argument("--steps", type=int, help="training steps (overrides the size's default)")
    p.add_argument("--train-config", help="training YAML (default configs/synth_tiny.yaml)")
    p.add_argument("--mining-config", help="mining YAML (default configs/mining_demo.yaml)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = DEMO_SIZES["small" if args.small else "full"]
    changes = {"workers": args.workers, "train_config": args.train_config,
               "mining_config": args.mining_config}
    cfg = with_overrides(cfg, **{k: v for k, v in changes.items() if v is not None})
    if args.steps is not None:
        cfg = with_overrides(cfg, train_overrides={"train": {"max_steps": args.steps}})
    try:
        run_demo(cfg, args.out)
    except HardmineError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
