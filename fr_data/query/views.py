"""DuckDB views over a mining run folder, and query results as text tables, CSV or Parquet.

Views: ``samples``, ``pairs``, ``classes`` (``RUN/<name>.parquet``; missing files are skipped with a
note), ``review`` (``RUN/review.csv``, the decisions exported by the review page; empty when the file is not
there, so a shipped query may join it; columns ``fr_data.folders.review_file.REVIEW_SCHEMA``),
``selected`` (a training run's ``selected.parquet``, given with ``train``), ``shard_samples`` (the shard
manifest ``samples.parquet``: named by ``RUN/run.json`` under ``"samples_manifest"`` or given explicitly),
``attributes`` (an optional attribute table) and ``overlap`` / ``overlap_classes`` (an overlap folder of
``hardmine overlap``, given explicitly: never guessed, since one run may be audited against several
evaluation sets). Results are
streamed in record batches: printing keeps only the rows shown, files are written batch by batch and
appear atomically.

The connection is read-only (:mod:`fr_data.query.readonly`): it may read only the views' files,
change no setting, and run only ``SELECT``/``EXPLAIN`` statements, within the memory and time limits
of its :class:`~fr_data.query.readonly.Limits` (the time limit covers reading the result too).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fr_data.folders import overlap_folder
from fr_data.folders import run_folder as rf
from fr_data.folders.review_file import REVIEW_FILE, REVIEW_SCHEMA, read_review
from fr_data.folders.shard_folder import samples_path
from fr_data.io.atomic import atomic_path
from fr_data.io.errors import DataError
from fr_data.io.parquet import ROW_GROUP_SIZE
from fr_data.query.readonly import (
    DEFAULT_LIMITS,
    Deadline,
    Limits,
    QueryError,
    QueryRefused,
    check_read_only,
    connect,
    duckdb_line,
    query_error,
)

RUN_VIEWS = ("samples", "pairs", "classes")
#: A training run folder's selected samples (written by ``fr_train.data.selection.Selection.save``):
#: ``key``, ``label`` (the training label), ``old_label`` (the label in the shards).
SELECTED_FILE = "selected.parquet"
# Result batch size: also the Parquet row-group size of --parquet output (DuckDB likes >= 100K rows).
BATCH_ROWS = ROW_GROUP_SIZE

__all__ = [
    "BATCH_ROWS",
    "RUN_VIEWS",
    "Limits",
    "QueryError",
    "QueryRefused",
    "RunViews",
    "format_table",
    "head_rows",
    "open_run",
    "open_views",
    "run_query",
    "write_result",
]


@dataclass
class RunViews:
    """An in-memory DuckDB connection with the run's views registered.

    Attributes:
        con: the connection.
        views: view name -> Parquet file it reads.
        notes: what was skipped or how a path was found, for the user.
        limits: the memory and time limits of every query.
    """

    con: duckdb.DuckDBPyConnection
    views: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)


def open_run(run: str | os.PathLike, *, shards: str | os.PathLike | None = None,
             attributes: str | os.PathLike | None = None, train: str | os.PathLike | None = None,
             overlap: str | os.PathLike | None = None,
             limits: Limits = DEFAULT_LIMITS) -> RunViews:
    """Register the views of a mining run folder.

    Args:
        run: the run folder (``manifests/RUN``).
        shards: shard manifest (``samples.parquet`` or the shard folder holding it); overrides
            ``run.json``'s ``"samples_manifest"``.
        attributes: an attribute Parquet file, registered as ``attributes``.
        train: a training run folder: its ``selected.parquet`` is registered as ``selected``.
        overlap: an overlap folder: ``overlap.parquet`` and ``overlap_classes.parquet`` registered as
            ``overlap`` and ``overlap_classes`` (``fr_data.folders.overlap_folder``).
        limits: memory and time limits of the queries.

    Raises:
        DataError: the run folder, or an explicitly named file, does not exist.
    """
    run = Path(run)
    if not run.is_dir():
        raise DataError(run, "", "mining run folder does not exist")
    files, notes = {}, []
    for name in RUN_VIEWS:
        path = rf.table_path(run, name)
        if path.is_file():
            files[name] = path
        else:
            notes.append(f"no {path}: view {name!r} not registered")
    review = run / REVIEW_FILE
    if review.is_file():
        files["review"] = (read_review(review).table(), review)
    else:
        files["review"] = (REVIEW_SCHEMA.empty_table(), review)  # so a shipped query may join it
    manifest = _shard_manifest(run, shards, notes)
    if manifest is not None:
        files["shard_samples"] = manifest
    if attributes is not None:
        if not Path(attributes).is_file():
            raise DataError(attributes, "", "attribute table does not exist")
        files["attributes"] = Path(attributes)
    if train is not None:
        files["selected"] = _selected(Path(train))
    if overlap is not None:
        overlap_folder.read_info(overlap)  # a DataError naming overlap.json when it is no overlap folder
        files["overlap"] = Path(overlap) / overlap_folder.OVERLAP_FILE
        files["overlap_classes"] = Path(overlap) / overlap_folder.CLASSES_FILE
    rv = open_views(files, limits)
    rv.notes.extend(notes)
    return rv


def open_views(sources: dict[str, Path | tuple[pa.Table, Path]], limits: Limits = DEFAULT_LIMITS) -> RunViews:
    """A read-only connection with one view per source, in order (the one place views are made): a
    Parquet file (read in place), or an in-memory table and the file it came from (shown, not read).

    Raises:
        DataError: a file that is not readable Parquet.
        ConfigError: limits DuckDB does not accept.
    """
    files = {name: Path(source).resolve() for name, source in sources.items() if not isinstance(source, tuple)}
    rv = RunViews(connect(files.values(), limits), limits=limits)
    for name, source in sources.items():
        if isinstance(source, tuple):
            rv.con.register(name, source[0])
            rv.views[name] = source[1]
        else:
            _add_view(rv, name, files[name])
    return rv


def run_query(rv: RunViews, sql: str, params: dict[str, object] | None = None) -> pa.RecordBatchReader | None:
    """Run ``sql`` (one or more ``SELECT`` statements, ``$name`` parameters bound from ``params``); return a
    reader over the last result, or None. The time limit runs until the reader is exhausted.

    Raises:
        QueryRefused: a statement that is not a ``SELECT``/``EXPLAIN``, or one that reaches for a file
            outside the views or a setting (one line).
        QueryError: DuckDB rejected the SQL (the message lists the registered views), or the query hit
            the memory or time limit (while running or while its result is read).
    """
    check_read_only(sql)
    deadline = Deadline(rv.con, rv.limits.timeout_s).start()
    try:
        rel = rv.con.sql(sql, params=params)
        reader = None if rel is None else rel.to_arrow_reader(BATCH_ROWS)
    except duckdb.Error as exc:
        deadline.cancel()
        raise query_error(exc, rv.views, rv.limits, deadline) from None
    if reader is None:
        deadline.cancel()
        return None
    return pa.RecordBatchReader.from_batches(reader.schema, _guarded(rv, reader, deadline))


def _guarded(rv: RunViews, reader: pa.RecordBatchReader, deadline: Deadline) -> Iterator[pa.RecordBatch]:
    """The reader's batches; its errors become one-line QueryErrors; the deadline stops with the reader."""
    try:
        yield from _batches(reader, rv, deadline)
    finally:
        deadline.cancel()


def head_rows(reader: pa.RecordBatchReader, max_rows: int) -> tuple[pa.Table, int]:
    """Keep the first ``max_rows`` rows of a result and count all of them (bounded memory)."""
    kept, total = [], 0
    for batch in _batches(reader):
        room = max_rows - total
        if room > 0:
            kept.append(batch.slice(0, room))
        total += batch.num_rows
    table = pa.Table.from_batches(kept, schema=reader.schema)
    return table, total


def format_table(table: pa.Table, total: int | None = None) -> str:
    """An aligned text table (numbers right-aligned, NULL for nulls) plus a row-count footer."""
    names = table.column_names
    cells = [[_cell(v) for v in table.column(n).to_pylist()] for n in names]
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in table.schema.types]
    widths = [max([len(n)] + [len(c) for c in col]) for n, col in zip(names, cells)]
    lines = [" | ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip(),
             "-+-".join("-" * w for w in widths)]
    for r in range(table.num_rows):
        row = [col[r].rjust(w) if num else col[r].ljust(w)
               for col, w, num in zip(cells, widths, numeric)]
        lines.append(" | ".join(row).rstrip())
    total = table.num_rows if total is None else total
    if total > table.num_rows:
        lines.append(f"({total} rows, {table.num_rows} shown, {total - table.num_rows} cut; "
                     "raise --max-rows or use --csv/--parquet)")
    else:
        lines.append(f"({total} row{'s' if total != 1 else ''})")
    return "\n".join(lines)


def write_result(reader: pa.RecordBatchReader, path: str | os.PathLike, fmt: str) -> int:
    """Stream a result to ``path`` as ``"csv"`` or ``"parquet"`` atomically; return the row count."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown output format {fmt!r}")
    rows = 0
    with atomic_path(path) as tmp:
        writer = (pacsv.CSVWriter(tmp, reader.schema) if fmt == "csv"
                  else pq.ParquetWriter(tmp, reader.schema, compression="zstd"))
        with writer:
            for batch in _batches(reader):
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def _batches(reader: pa.RecordBatchReader, rv: RunViews | None = None,
             deadline: Deadline | None = None) -> Iterator[pa.RecordBatch]:
    """The reader's batches; a DuckDB or Arrow error while reading (Arrow passes DuckDB's errors on as
    ``OSError``/``ArrowException`` with DuckDB's message) becomes a one-line QueryError."""
    try:
        yield from reader
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        views, limits = (rv.views, rv.limits) if rv is not None else ([], DEFAULT_LIMITS)
        raise query_error(exc, views, limits, deadline, "query failed while reading results") from None


def _add_view(rv: RunViews, name: str, path: Path) -> None:
    """View ``name`` (a fixed name of this module) over the Parquet file ``path`` (never pasted into SQL)."""
    try:
        rv.con.read_parquet(str(path)).create_view(name, replace=True)
    except duckdb.Error as exc:
        raise DataError(path, "", f"not a readable Parquet file for view {name!r}: {duckdb_line(exc)}") from None
    rv.views[name] = path


def _selected(train: Path) -> Path:
    """``train/selected.parquet`` (a DataError naming it when the folder holds none)."""
    path = train / SELECTED_FILE
    if not path.is_file():
        raise DataError(path, "", "no selected.parquet: not a training run folder, or its training never started")
    return path


def _shard_manifest(run: Path, shards: str | os.PathLike | None, notes: list[str]) -> Path | None:
    """The shard ``samples.parquet``: the explicit option, else ``run.json["samples_manifest"]``."""
    if shards is not None:
        path = Path(shards)
        path = samples_path(path) if path.is_dir() else path
        if not path.is_file():
            raise DataError(path, "", "shard manifest does not exist")
        return path
    named = rf.read_run_info(run).get("samples_manifest")
    if not named:
        notes.append("no shard manifest known (run.json has no 'samples_manifest'; use --shards)")
        return None
    for cand in (run / named, Path(named)):
        if cand.is_file():
            return cand
    notes.append(f"shard manifest {named!r} named in run.json not found: view 'shard_samples' skipped")
    return None


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
