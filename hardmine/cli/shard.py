"""Cut a face data set (RecordIO folder, .rec file or image folder) into WebDataset shards.

Example:
    python tools/shard.py --src data/synth --out data/shards --per-shard 2000 --workers 2 --seed 0

Writes OUT/shard-NNNNNN.tar, OUT/samples.parquet, OUT/shards.json, OUT/rejected.parquet (see
fr_data.folders.shard_folder). Rerun with the same arguments to resume an interrupted run.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections import Counter

from tqdm import tqdm

from fr_data.ingest.image_folder import NOT_AN_IMAGE
from fr_data.ingest.plan import DEFAULT_DECODE_CHECK, ShardOptions
from fr_data.ingest.sharding import ShardRun, write_shards
from fr_data.io.argtypes import (
    CommandParser,
    existing_path,
    fraction,
    non_negative_int,
    output_folder,
    positive_int,
)
from fr_data.io.command import command, fail
from fr_data.io.errors import HardmineError
from fr_data.io.policy import ErrorPolicy
from fr_data.io.publish import check_apart


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = CommandParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, type=existing_path, help="RecordIO folder, .rec file, or image folder")
    parser.add_argument("--out", required=True, type=output_folder, help="output folder for the shards and manifests")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--per-shard", type=positive_int, help="samples per shard (default 10000)")
    size.add_argument("--shard-bytes", type=positive_int, help="approximate bytes per shard instead")
    parser.add_argument("--workers", type=positive_int, default=1, help="processes writing shards (default 1)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the global shuffle (default 0)")
    parser.add_argument("--limit", type=positive_int, help="keep only this many samples (a seeded random subset)")
    parser.add_argument("--world-size", type=positive_int, default=1, help="training ranks the shards must divide among")
    parser.add_argument("--loader-workers", type=positive_int, default=1,
                        help="DataLoader workers per rank; shard count becomes a multiple of world-size x this")
    parser.add_argument("--skip-corrupt", action="store_true",
                        help="record bad records in OUT/rejected.parquet and continue instead of aborting; "
                             "a damaged RecordIO index is repaired from the .rec (the .rec is the truth)")
    parser.add_argument("--repair-idx", action="store_true",
                        help="RecordIO: check the .idx against a scan of the .rec and repair it in memory "
                             "(bad lines and damaged spans are listed in OUT/rejected.parquet)")
    check = parser.add_mutually_exclusive_group()
    check.add_argument("--decode-check", type=fraction, default=DEFAULT_DECODE_CHECK, metavar="FRACTION",
                       help="fraction of images fully decoded with PIL (1 = every image; default "
                            f"{DEFAULT_DECODE_CHECK}); every image's header is parsed for its size")
    check.add_argument("--no-decode-check", dest="decode_check", action="store_const", const=0.0,
                       help="same as --decode-check 0: parse image headers only")
    return parser


def _options(args: argparse.Namespace) -> ShardOptions:
    return ShardOptions(per_shard=args.per_shard, shard_bytes=args.shard_bytes, seed=args.seed,
                        multiple_of=args.world_size * args.loader_workers, limit=args.limit,
                        decode_check=args.decode_check, errors=ErrorPolicy(skip=args.skip_corrupt))


def planned_records(available: int, options: ShardOptions) -> int:
    """Records a run reads (the progress bar's total): the source's images, or the first ``--limit``."""
    return available if options.limit is None else min(available, options.limit)


def _print_summary(run: ShardRun) -> None:
    state = "already complete" if run.already_complete else f"{run.resumed} shard(s) reused from an earlier run"
    print(f"{run.out}: {len(run.shards)} shards, {run.num_samples} samples ({state})")
    if run.rejected.num_rows == 0:
        return
    # Group by the reason's leading phrase with numbers blanked; the details differ from record to record.
    reasons = Counter(re.sub(r"\d+", "N", reason.split(" (")[0].split(": ")[0])
                      for reason in run.rejected.column("reason").to_pylist())
    print(f"rejected {run.rejected.num_rows} record(s) (details in {run.out / 'rejected.parquet'}):")
    print(f"  {'count':>7}  reason")
    for reason, count in reasons.most_common(20):
        print(f"  {count:>7}  {reason[:100]}")
    if len(reasons) > 20:
        print(f"  ... and {len(reasons) - 20} more distinct reasons")
    not_images = reasons.get(NOT_AN_IMAGE, 0)
    if not_images:
        print(f"skipped {not_images} non-image file(s) (reason {NOT_AN_IMAGE!r} in {run.out / 'rejected.parquet'})")


@command("hardmine shard")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")  # the sources' notes
    from fr_data.ingest.sources import open_source  # imported late: the CLI help works without it

    try:
        check_apart(args.out, args.src)
        options = _options(args)
        source = open_source(args.src, errors=options.errors, repair_idx=args.repair_idx)
        resolved = {**vars(args), "src": os.path.abspath(args.src), "out": os.path.abspath(args.out)}
        with tqdm(total=planned_records(len(source), options), unit="img", desc="sharding",
                  disable=None) as bar:  # silent when not on a terminal
            run = write_shards(source, args.out, options, workers=args.workers, args=resolved,
                               progress=lambda record: bar.update(record.count + record.rejected))
    except HardmineError as exc:  # bad input or config, or a full disk (WriteError naming the file)
        return fail(prog, exc)
    _print_summary(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
