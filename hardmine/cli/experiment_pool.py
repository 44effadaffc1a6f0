"""``hardmine experiment-pool`` (``tools/experiment_pool.py``): pool experiment folders of one recipe, each
with its own pretrained backbone, and judge the goal on the mean over backbones.

    python tools/experiment_pool.py --out POOL EXP1 EXP2 [EXP3 ...] [--overwrite]

Each EXP is a finished ``tools/experiment.py`` folder (both splits scored). The folders must hold the
same recipe: their ``experiment.yaml`` may differ only in the seeds (training set, packs, fine-tuning)
and the tuning notes; arms that not every folder ran are left out; the same pretrained backbone twice is
refused. Writes POOL/pool.md, POOL/pool.parquet, POOL/pool.yaml and POOL/figures/pool_gain_*.png.
Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from fr_data.io.argtypes import CommandParser, existing_folder, output_folder
from fr_data.io.command import command, fail
from fr_data.io.errors import HardmineError
from fr_data.io.publish import check_apart
from hardmine.experiment.pool import check_members, read_goal, read_member
from hardmine.experiment.pool_report import write_pool_folder
from hardmine.experiment.verdict import verdict_of

__all__ = ["build_parser", "main"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = CommandParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiments", type=existing_folder, nargs="+", help="experiment folders (one pretrained backbone each)")
    p.add_argument("--out", type=output_folder, required=True, help="pool folder (written once complete)")
    p.add_argument("--metric", default=None,
                   help="results column to pool (default: the goal's metric in the members' config)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    return p


@command("hardmine experiment-pool")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    command = f"{prog or 'python tools/experiment_pool.py'} " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        check_apart(args.out, *args.experiments)
        metric = args.metric or read_goal(args.experiments[0]).metric
        members = [read_member(path, metric) for path in args.experiments]
        check_members(members)
        report = write_pool_folder(members, args.out, args.overwrite, command)
        verdict = verdict_of(args.out)
    except HardmineError as exc:
        return fail(prog, exc)
    print(verdict.text + f"\n\nwrote {report}")
    return 0
