"""Mine easy/hard samples, label noise, duplicates and variation splits from an embeddings folder.

    python tools/mine_hard.py --embeddings EMB --out manifests/RUN [--samples SHARDS/samples.parquet]
        [--attributes ATTR.parquet] [--config configs/mining.yaml] [--overwrite] [--report DIR]

Writes RUN/{samples,classes,pairs,groups,sweep}.parquet, RUN/run.json and RUN/config.yaml atomically
(the folder appears only when complete). Prints the reconciled counts and the threshold sweep. With
--report DIR it then writes the review page of the run (as ``hardmine report`` does, thumbnails from
the shard folder of --samples); if only the page fails, the error line says the run is complete.
Exit codes: 0 ok, 2 bad input or config (or a review page refused), 1 a review page that crashed.

Under torchrun (``torchrun --nproc_per_node R -m hardmine mine ...``, any R, several nodes too) every
k-NN search is split across the ranks (gloo on CPU, NCCL on GPUs); rank 0 writes the same run folder one
process writes (``run.json`` records the rank count and each rank's timings and peak memory). Every rank
must read the same embeddings and see the output's folder (a shared filesystem); a rank that fails,
dies, or does not reach the next exchange within --rank-timeout stops every rank (exit 2, nothing
published).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta
from pathlib import Path

from fr_data import runtime
from fr_data.io.argtypes import (
    CommandParser,
    existing_folder,
    output_folder,
    parquet_file,
    positive_int,
    shipped_config,
)
from fr_data.io.command import command, fail
from fr_data.io.config import load_config
from fr_data.io.errors import HardmineError, one_line
from fr_data.io.publish import check_apart
from fr_data.mining import MiningConfig, mine
from fr_data.mining.group import Ranks
from fr_data.mining.report import format_summary, warning_lines


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = CommandParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embeddings", type=existing_folder, required=True,
                   help="EMB folder (embeddings.npy, index.parquet)")
    p.add_argument("--out", type=output_folder, required=True, help="run folder to create (manifests/RUN)")
    p.add_argument("--samples", type=parquet_file, help="shard manifest samples.parquet (source_index -> key)")
    p.add_argument("--attributes", type=parquet_file, help="attribute Parquet keyed by key, source_index or label")
    p.add_argument("--config", type=shipped_config, help="mining YAML, or the name of a shipped one such as mining_demo "
                   "(default: built-in defaults)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder when done")
    p.add_argument("--quiet", action="store_true", help="no per-stage log lines")
    p.add_argument("--report", type=output_folder, metavar="DIR",
                   help="also write the review page of the run to DIR (needs --samples: its folder holds "
                        "the shards)")
    p.add_argument("--device", choices=runtime.DEVICE_CHOICES, default="auto",
                   help="under torchrun: the ranks' device (cuda: NCCL, one GPU per rank; cpu: gloo)")
    p.add_argument("--rank-timeout", type=positive_int, default=1800, metavar="SECONDS",
                   help="under torchrun: how long a rank waits for the others at an exchange before the "
                        "run stops (default 1800)")
    return p


@command("hardmine mine")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.report is not None and args.samples is None:
        parser.error("--report needs --samples SHARDS/samples.parquet (the shards hold the images)")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        config = args.config
        check_apart(args.out, args.embeddings, args.samples, args.attributes, config)
        if args.report is not None:
            check_apart(args.report, args.out, args.embeddings, args.samples, args.attributes, config)
        cfg = load_config(config, MiningConfig) if config else MiningConfig()
        result = _mine(args, cfg)
        if result is None:  # a rank other than 0: it searched, rank 0 writes and reports
            return 0
        print(format_summary(result.run))
        print(f"wrote {result.folder}")
        for line in warning_lines(result.run):
            print(f"warning: {line}", file=sys.stderr)
    except HardmineError as exc:
        return fail(prog, exc)
    return 0 if args.report is None else _report(result.folder, args, prog)


def _mine(args: argparse.Namespace, cfg: MiningConfig):
    """Run ``mine`` in this process, or as one rank of the torchrun group it was started in.

    The ranks leave the group without a last barrier: the others finish when their results reached rank
    0, which then writes the run folder without them."""
    device = runtime.resolve_device(args.device)
    started = runtime.join_process_group(device, timedelta(seconds=args.rank_timeout))
    try:
        return mine(args.embeddings, args.out, cfg, samples=args.samples, attributes=args.attributes,
                    overwrite=args.overwrite, ranks=Ranks.current(device))
    finally:
        if started:
            runtime.leave_process_group(synchronise=False)


def _report(run: Path, args: argparse.Namespace, prog: str) -> int:
    """Write the review page of the published run ``run``; a failure says the run itself is complete."""
    # imported here: the ranks of a run never load the page's libraries
    from fr_data.review import build_report
    try:
        page = build_report(run, args.samples.parent, args.report, overwrite=args.overwrite)
    except Exception as exc:  # noqa: BLE001 - the run is published whatever went wrong: say so, on one line
        reason = one_line(exc) if isinstance(exc, HardmineError) else f"{type(exc).__name__}: {one_line(exc)}"
        print(f"{prog}: error: the mining run is complete and published at {run}; the review page failed: "
              f"{reason}", file=sys.stderr)
        return 2 if isinstance(exc, HardmineError) else 1
    print(f"wrote the review page {page.index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
