"""End-to-end demo on synthetic faces: synth, shard, train, embed, mine, evaluate, query, review page.

Examples::

    python tools/demo.py --out demo            # the README demo (a few minutes on 2 CPU cores)
    python tools/demo.py --out demo-small --small   # about a minute

Rerun the same command to resume: every finished stage is skipped. Prints the DuckDB query results and a
summary (also written to OUT/summary.json) ending with the path of the review page
(OUT/report/index.html). Exit codes: 0 ok, 2 bad input or config.

Upgrading: a stage is skipped only when its stamp (OUT/stages/NAME.json) says it finished from the current
inputs. A demo folder written by a hardmine version without stamps (before the stage mechanism) has none,
so the first rerun redoes every stage once, replacing its outputs (the same data: the outputs do not
change), and later reruns skip them again. Nothing is adopted unchecked from such a folder.
"""

from __future__ import annotations

import argparse

from fr_data.io.argtypes import CommandParser, non_negative_int, output_folder, positive_int
from fr_data.io.command import command, fail
from fr_data.io.errors import HardmineError
from hardmine.pipelines.demo import demo_config, run_demo

#: The demo's last line: where to go from mining to a measured training gain.
NEXT = ("Next: does training on these manifests help hard samples? python tools/experiment.py --out exp "
        "--size small (a quick look; docs/results.md has the full-size result)")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = CommandParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=output_folder, required=True, help="output folder (created; reused to resume)")
    p.add_argument("--small", action="store_true", help="the ~1 minute size instead of the full demo")
    p.add_argument("--workers", type=positive_int, help="rendering/sharding processes (default 2)")
    p.add_argument("--steps", type=positive_int, help="training steps (overrides the size's default)")
    p.add_argument("--seed", type=non_negative_int, help="seed of the synthetic data set, shuffle and training order "
                                            "(default 0)")
    p.add_argument("--train-config", help="training YAML (default configs/synth_tiny_cosface.yaml)")
    p.add_argument("--mining-config", help="mining YAML (default configs/mining.yaml)")
    return p


@command("hardmine demo")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    cfg = demo_config("small" if args.small else "full", seed=args.seed, steps=args.steps,
                      workers=args.workers, train_config=args.train_config, mining_config=args.mining_config)
    try:
        run_demo(cfg, args.out)
    except HardmineError as exc:
        return fail(prog, exc)
    print(NEXT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
