"""Write the static review page of a mining run.

    hardmine report RUN --shards SHARDS --out DIR [--per-section N] [--attributes A.parquet]
        [--decisions review.csv] [--overlap DIR] [--overwrite] [--quiet]   (the same: python tools/report.py ...)

Writes DIR/index.html (open it from disk: no server, no network), DIR/img/ (thumbnails of the shown
samples, read by key from the shards), DIR/figures/ (charts) and DIR/report.json, atomically (the folder
appears only when complete). Decisions made on the page are exported as review.csv; train with them via
``data.selection.review``. ``--overlap DIR`` (an overlap folder of ``hardmine overlap`` made from the
run's embeddings) adds the #overlap section: evaluation images beside the training classes and images
they match. Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fr_data.io.argtypes import CommandParser, existing_file, existing_folder, output_folder, parquet_file, positive_int
from fr_data.io.command import command, fail
from fr_data.io.errors import HardmineError
from fr_data.review import DEFAULT_PER_SECTION, build_report
from fr_data.review.page import attachments
from fr_data.review.build import format_summary


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = CommandParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="mining run folder (manifests/RUN)")
    p.add_argument("--shards", type=existing_folder, required=True, help="shard folder the run was mined from")
    p.add_argument("--out", type=output_folder, required=True, help="report folder to create")
    p.add_argument("--per-section", type=positive_int, default=DEFAULT_PER_SECTION, metavar="N",
                   help=f"items shown per section, best ranked first (default {DEFAULT_PER_SECTION})")
    p.add_argument("--attributes", type=parquet_file,
                   help="attribute Parquet (keyed by key, source_index or label) whose values are shown "
                        "with the images (default: attribute columns of the run)")
    p.add_argument("--decisions", type=existing_file, metavar="review.csv",
                   help="start the page from these decisions (a review.csv exported by the page or another "
                        "curator; merged into the browser's stored ones once)")
    for a in attachments():
        p.add_argument(f"--{a.option}", type=existing_folder, metavar="DIR", help=a.help)
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder when done")
    p.add_argument("--quiet", action="store_true", help="no per-stage log lines")
    return p


@command("hardmine report")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("fr_data").setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        result = build_report(args.run, args.shards, args.out, per_section=args.per_section,
                              attributes=args.attributes, overwrite=args.overwrite,
                              decisions=args.decisions,
                              attached={a.option: getattr(args, a.option.replace("-", "_")) for a in attachments()
                                        if getattr(args, a.option.replace("-", "_")) is not None})
    except HardmineError as exc:
        return fail(prog, exc)
    print(format_summary(result))
    print(f"wrote {result.index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
