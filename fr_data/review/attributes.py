"""Attribute values shown with each image: attribute columns the mining run joined into ``samples.parquet``,
or an attribute table given to the report (joined like mining does: by key, source_index or label).

Only the shown samples are looked up. Column names are data: they go into SQL only through
:func:`fr_data.query.identifiers.quote_ident`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.folders import run_folder as rf
from fr_data.folders import run_signals
from fr_data.mining.splits import join_attributes
from fr_data.query.identifiers import quote_ident
from fr_data.review.select import RunTables

MAX_COLUMNS = 16
HIDDEN = ("source_index",)  # the shard record number: the key already names the sample


def _display(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _by_key(table: pa.Table, columns: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for row in table.select(["key", *columns]).to_pylist():
        values = {c: _display(row[c]) for c in columns if row[c] is not None}
        if values:
            out[row["key"]] = values
    return out


def run_attributes(t: RunTables, shown: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Values of the extra (attribute) columns of ``samples.parquet`` for the shown keys."""
    path = rf.table_path(t.folder, "samples")
    names = pq.read_schema(path).names
    declared = run_signals.columns("samples")  # mined signals, not attributes
    extra = [c for c in names if c not in declared and c not in HIDDEN][:MAX_COLUMNS]
    if not extra or not shown:
        return {}
    cols = ", ".join(quote_ident(c, path) for c in extra)
    t.con.register("shown_keys", pa.table({"key": pa.array(sorted(shown), pa.string())}))
    try:
        table = t.con.sql(f"SELECT key, {cols} FROM samples WHERE key IN (SELECT key FROM shown_keys)")
        return _by_key(table.to_arrow_table(), extra)
    finally:
        t.con.unregister("shown_keys")


def file_attributes(path: str | os.PathLike, shown: dict[str, Any],
                    shard_manifest: str | os.PathLike | None) -> dict[str, dict[str, str]]:
    """Values of an attribute table for the shown keys (``shown``: key -> label).

    Raises:
        DataError: the file is missing, has no join column, or repeats a join value.
    """
    keys = sorted(shown)
    samples = pa.table({"key": pa.array(keys, pa.string()),
                        "label": pa.array([shown[k] for k in keys], pa.int64())})
    manifest = Path(shard_manifest) if shard_manifest is not None and Path(shard_manifest).is_file() else None
    join = join_attributes(samples, path, manifest)
    return _by_key(join.table, [c for c in join.columns if c not in HIDDEN][:MAX_COLUMNS])


def attribute_values(t: RunTables, shown: dict[str, Any], path: str | os.PathLike | None,
                     shard_manifest: str | os.PathLike | None) -> dict[str, dict[str, str]]:
    """Key -> {column: value} of the shown samples: from ``path`` when given, else from the run."""
    if path is not None:
        return file_attributes(path, shown, shard_manifest)
    return run_attributes(t, shown)
