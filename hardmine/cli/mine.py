"""Mine easy/hard samples, label noise, duplicates and variation splits from an embeddings folder.

    python tools/mine_hard.py --embeddings EMB --out manifests/RUN [--samples SHARDS/samples.parquet]
        [--attributes ATTR.parquet] [--config configs/mining.yaml] [--overwrite] [--report DIR]

Writes RUN/{samples,classes,pairs,groups,sweep}.parquet, RUN/run.json and RUN/config.yaml atomically
(the folder appears only when complete). Prints the reconciled counts and the threshold sweep. With
--report DIR it then writes the review page of the run (as ``hardmine report`` does, thumbnails from
the shard folder of --samples).
Exit codes: 0 ok, 2 bad input or config.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fr_data.io.config import load_config
from fr_data.io.errors import HardmineError
from fr_data.mining import MiningConfig, mine
from fr_data.mining.report import format_summary, warning_lines
from fr_data.review import build_report


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embeddings", type=Path, required=True,
                   help="EMB folder (embeddings.npy, index.parquet)")
    p.add_argument("--out", type=Path, required=True, help="run folder to create (manifests/RUN)")
    p.add_argument("--samples", type=Path, help="shard manifest samples.parquet (source_index -> key)")
    p.add_argument("--attributes", type=Path, help="attribute Parquet keyed by key, source_index or label")
    p.add_argument("--config", type=Path, help="mining YAML (default: built-in defaults)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder when done")
    p.add_argument("--quiet", action="store_true", help="no per-stage log lines")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="also write the review page of the run to DIR (needs --samples: its folder holds "
                        "the shards)")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.report is not None and args.samples is None:
        parser.error("--report needs --samples SHARDS/samples.parquet (the shards hold the images)")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        cfg = load_config(args.config, MiningConfig) if args.config else MiningConfig()
        result = mine(args.embeddings, args.out, cfg, samples=args.samples, attributes=args.attributes,
                      overwrite=args.overwrite)
        print(format_summary(result.run))
        print(f"wrote {result.folder}")
        if args.report is not None:
            page = build_report(result.folder, args.samples.parent, args.report, overwrite=args.overwrite)
            print(f"wrote the review page {page.index}")
        for line in warning_lines(result.run):
            print(f"warning: {line}", file=sys.stderr)
    except HardmineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
