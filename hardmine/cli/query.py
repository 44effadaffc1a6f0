"""Query a mining run with DuckDB SQL: ``python tools/query.py manifests/RUN "SQL"``.

Views: samples, pairs, classes (RUN/*.parquet), review (RUN/review.csv from the review page, when
present, else empty: key, decision, kind, action, label, other_label, line, source_path), shard_samples
(run.json "samples_manifest" or --shards), attributes (--attributes), selected (--train: the training run's
selected.parquet: key, label (training label), old_label), overlap and overlap_classes (--overlap DIR, an
overlap folder of hardmine overlap). Prints an aligned table, or writes --csv / --parquet.
Queries are read-only: only SELECT statements over the views run (no COPY, ATTACH, INSTALL/LOAD, SET,
no other file); results leave only through --csv / --parquet, written atomically. Each query runs under
a memory limit (--memory-limit, default 2GB) and a time limit (--timeout, default 300 s).
Exit codes: 0 ok, 2 bad SQL, a refused statement or bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fr_data.io.argtypes import (
    CommandParser,
    existing_folder,
    existing_path,
    non_blank,
    non_negative_int,
    output_file,
    parquet_file,
    positive_float,
)
from fr_data.io.command import command, fail
from fr_data.io.errors import ConfigError, DataError, HardmineError
from fr_data.io.publish import check_apart
from fr_data.io.shipped import resolve_query
from fr_data.query.views import Limits, RunViews, format_table, head_rows, open_run, run_query, write_result


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = CommandParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=existing_folder, help="mining run folder (manifests/RUN)")
    p.add_argument("sql", nargs="?", type=non_blank, help="SQL text (or use --file)")
    p.add_argument("--file", type=Path, help="run the SQL in this file (or a packaged query by name, e.g. "
                   "suspects_per_class)")
    p.add_argument("--shards", type=existing_path, help="shard samples.parquet (or its folder): view shard_samples")
    p.add_argument("--attributes", type=parquet_file, help="attribute Parquet file: view attributes")
    p.add_argument("--train", type=existing_folder, help="training run folder (train.output): view selected, "
                   "its selected.parquet")
    p.add_argument("--overlap", type=existing_folder, help="overlap folder (hardmine overlap): views overlap, "
                   "overlap_classes")
    p.add_argument("--max-rows", type=non_negative_int, default=50, help="rows printed (default 50)")
    p.add_argument("--memory-limit", default=Limits.memory_limit,
                   help=f"DuckDB memory limit of the query (default {Limits.memory_limit})")
    p.add_argument("--timeout", type=positive_float, default=Limits.timeout_s,
                   help=f"seconds the query may run (default {Limits.timeout_s:g})")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", type=output_file, help="write the result to this CSV file")
    out.add_argument("--parquet", type=output_file, help="write the result to this Parquet file")
    return p


@command("hardmine query")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if (args.sql is None) == (args.file is None):
        return fail(prog, ConfigError("give either SQL text or --file"))
    try:
        sql = args.sql if args.file is None else _read_sql_file(args.file)
        limits = Limits(memory_limit=args.memory_limit, timeout_s=args.timeout)
        views = open_run(args.run, shards=args.shards, attributes=args.attributes, train=args.train,
                         overlap=args.overlap, limits=limits)
        for note in views.notes:
            print(f"note: {note}", file=sys.stderr)
        _check_output(views, args.csv or args.parquet)
        return _emit(run_query(views, sql), args)
    except (HardmineError, OSError) as exc:
        return fail(prog, exc)


def _read_sql_file(name: Path) -> str:
    """The SQL of ``--file`` (a file or a packaged query's name); an empty file is refused."""
    path = resolve_query(name)
    sql = path.read_text()
    if not sql.strip():
        raise DataError(path, "", "the SQL file is empty")
    return sql


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
