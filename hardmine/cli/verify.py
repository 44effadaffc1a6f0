"""Check every shard of a folder written by tools/shard.py against its manifests.

Example:
    python tools/verify_shards.py data/shards

Exits 0 when every shard matches shards.json and samples.parquet (counts, keys, sizes, sha256, labels,
json metadata), 1 on any mismatch (each is printed), 2 when the folder is not a finished shard folder.
"""

from __future__ import annotations

import argparse
import sys

from fr_data.folders.shard_folder import load_listing
from fr_data.ingest.verify import verify_shards
from fr_data.io.argtypes import CommandParser
from fr_data.io.command import command, fail
from fr_data.io.errors import DataError


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = CommandParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder holding shard-*.tar, shards.json and samples.parquet")
    return parser


@command("hardmine verify")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        problems = verify_shards(args.out)
        listing = load_listing(args.out)
    except DataError as exc:
        return fail(prog, exc)
    for problem in problems:
        print(f"MISMATCH {problem}")
    if problems:
        print(f"{args.out}: {len(problems)} mismatch(es)", file=sys.stderr)
        return 1
    print(f"{args.out}: OK, {len(listing['shards'])} shards, {listing['num_samples']} samples verified")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
