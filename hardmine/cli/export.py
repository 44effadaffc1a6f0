"""Turn review decisions into file operations: ``hardmine export --review review.csv --shards S --out list.txt``.

Writes OUT (the source_path of every image the review drops, one per line, sorted) and relabel.csv beside
it (source_path,identity,new_identity,label,new_label for every image a relabel:L decision moves to label
L and every image of a label a merge:A:B decision folds into another one, merged into the group's smallest
label as training does). Paths are those of the shard manifest's source_path column: relative to the
image folder that was sharded (RecordIO: train.rec#KEY). Exit codes: 0 ok, 2 bad input (a key the
shards do not hold, a relabel to a label without a sample, a manifest without source_path, a malformed
review.csv: file and line named).
"""

from __future__ import annotations

import argparse

from fr_data.folders.review_file import read_review
from fr_data.io.argtypes import CommandParser, existing_file, existing_path, output_file
from fr_data.io.command import command, fail
from fr_data.io.errors import HardmineError
from fr_data.io.publish import check_apart
from fr_data.review.export import RELABEL_FILE, file_actions, manifest_provenance, write_file_actions


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = CommandParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--review", type=existing_file, required=True, help="review.csv exported by the review page")
    p.add_argument("--shards", type=existing_path, required=True,
                   help="the shard folder the run was made from (or its samples.parquet)")
    p.add_argument("--out", type=output_file, required=True,
                   help=f"file listing the paths to delete; {RELABEL_FILE} is written beside it")
    return p


@command("hardmine export")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        check_apart(args.out, args.review, args.shards)
        check_apart(args.out.parent / RELABEL_FILE, args.review, args.shards)
        actions = file_actions(read_review(args.review), manifest_provenance(args.shards))
        listing, relabel = write_file_actions(actions, args.out)
    except (HardmineError, OSError) as exc:
        return fail(prog, exc)
    print(f"{listing}: {len(actions.delete)} file(s) to delete")
    print(f"{relabel}: {len(actions.relabel)} file(s) to move to another identity")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
