"""Mine easy/hard samples, label noise, duplicates and variation splits from an embeddings folder.

    python tools/mine_hard.py --embeddings EMB --out manifests/RUN [--samples SHARDS/samples.parquet]
        [--attributes ATTR.parquet] [--config configs/mining.yaml] [--overwrite]

Writes RUN/{samples,classes,pairs,groups,sweep}.parquet, RUN/run.json and RUN/config.yaml atomically
(the folder appears only when complete). Prints the reconciled counts and the threshold sweep.
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
from fr_data.mining.report import format_summary


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
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        cfg = load_config(args.config, MiningConfig) if args.config else MiningConfig()
        result = mine(args.embeddings, args.out, cfg, samples=args.samples, attributes=args.attributes,
                      overwrite=args.overwrite)
    except HardmineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(result.run))
    print(f"wrote {result.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
