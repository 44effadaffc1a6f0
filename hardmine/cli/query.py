"""Query a mining run with DuckDB SQL: ``python tools/query.py manifests/RUN "SQL"``.

Views: samples, pairs, classes (RUN/*.parquet), review (RUN/review.csv from the review page, when
present: key, decision, kind, action, label, other_label, line), shard_samples (run.json
"samples_manifest" or --shards), attributes (--attributes). Prints an aligned table, or writes --csv / --parquet.
Queries are read-only: only SELECT statements over the views run (no COPY, ATTACH, INSTALL/LOAD, SET,
no other file); results leave only through --csv / --parquet, written atomically. Each query runs under
a memory limit (--memory-limit, default 2GB) and a time limit (--timeout, default 300 s).
Exit codes: 0 ok, 2 bad SQL, a refused statement or bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fr_data.io.errors import HardmineError
from fr_data.io.publish import check_apart
from fr_data.io.shipped import resolve_query
from fr_data.query.views import Limits, RunViews, format_table, head_rows, open_run, run_query, write_result


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="mining run folder (manifests/RUN)")
    p.add_argument("sql", nargs="?", help="SQL text (or use --file)")
    p.add_argument("--file", type=Path, help="run the SQL in this file (or a packaged query by name, e.g. "
                   "suspects_per_class)")
    p.add_argument("--shards", type=Path, help="shard samples.parquet (or its folder): view shard_samples")
    p.add_argument("--attributes", type=Path, help="attribute Parquet file: view attributes")
    p.add_argument("--max-rows", type=int, default=50, help="rows printed (default 50)")
    p.add_argument("--memory-limit", default=Limits.memory_limit,
                   help=f"DuckDB memory limit of the query (default {Limits.memory_limit})")
    p.add_argument("--timeout", type=float, default=Limits.timeout_s,
                   help=f"seconds the query may run (default {Limits.timeout_s:g})")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", type=Path, help="write the result to this CSV file")
    out.add_argument("--parquet", type=Path, help="write the result to this Parquet file")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if (args.sql is None) == (args.file is None):
        print("error: give either SQL text or --file", file=sys.stderr)
        return 2
    try:
        sql = args.sql if args.file is None else resolve_query(args.file).read_text()
        limits = Limits(memory_limit=args.memory_limit, timeout_s=args.timeout)
        views = open_run(args.run, shards=args.shards, attributes=args.attributes, limits=limits)
        for note in views.notes:
            print(f"note: {note}", file=sys.stderr)
        _check_output(views, args.csv or args.parquet)
        return _emit(run_query(views, sql), args)
    except (HardmineError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _check_output(views: RunViews, target: Path | None) -> None:
    """Refuse an output file that is (or a folder that holds) one of the files the views read."""
    if target is not None:
        check_apart(target, *views.views.values())


def _emit(reader, args: argparse.Namespace) -> int:
    if reader is None:
        print("OK (statement returned no rows)")
        return 0
    target = args.csv or args.parquet
    if target is not None:
        rows = write_result(reader, target, "csv" if args.csv else "parquet")
        print(f"wrote {rows} rows to {target}")
        return 0
    table, total = head_rows(reader, max(args.max_rows, 0))
    print(format_table(table, total))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
