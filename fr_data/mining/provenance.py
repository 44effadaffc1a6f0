"""Where each mined row came from: ``samples.source_path`` / ``samples.identity`` (by key) and
``classes.identity`` (by label), from the shard manifest ``--samples``.

Both are DuckDB queries over the manifest, streamed from its file: a hash join of the rows' keys (a rank's
share of a distributed run) and a per-label minimum, so no process holds the manifest's N rows. Manifests
written before the provenance columns existed give nulls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fr_data.folders.shard_folder import PROVENANCE_SCHEMA, SAMPLES_SCHEMA, has_provenance
from fr_data.io.parquet import conform
from fr_data.query.readonly import INTERNAL, connect

__all__ = ["add_provenance", "classes_identity", "samples_provenance"]


def _manifest_view(manifest: str | Path) -> Any:
    """A locked DuckDB connection with the shard manifest as view ``m`` (``key, label, source_path,
    identity``), its provenance columns' types checked first (a SchemaError naming the file)."""
    present = pq.read_schema(manifest)
    wanted = pa.schema([SAMPLES_SCHEMA.field("key"), SAMPLES_SCHEMA.field("label"), *PROVENANCE_SCHEMA])
    conform(pa.schema([present.field(c) for c in wanted.names]).empty_table(), wanted, manifest)
    con = connect([manifest], INTERNAL, spill=True)
    con.read_parquet(str(manifest)).project("key, label, source_path, identity").create_view("m")
    return con


def samples_provenance(table: pa.Table, manifest: str | Path | None) -> pa.Table:
    """``samples.source_path`` / ``samples.identity`` of the table's keys from the shard manifest
    ``--samples`` (a DuckDB hash join of the table's keys against the streamed manifest); nulls without one
    or when it predates the provenance columns."""
    n = table.num_rows
    at = np.full(n, -1, np.int64)
    found = PROVENANCE_SCHEMA.empty_table()
    if manifest is not None and has_provenance(manifest):
        con = _manifest_view(manifest)
        con.register("s", pa.table({"key": table.column("key"), "__row": pa.array(np.arange(n), pa.int64())}))
        got = con.sql("SELECT s.__row, m.source_path, m.identity FROM s JOIN m ON s.key = m.key").to_arrow_table()
        con.close()
        at[got.column("__row").to_numpy()] = np.arange(got.num_rows)
        found = pa.table({c: got.column(c).cast(pa.string()) for c in PROVENANCE_SCHEMA.names})
    where = pa.array(np.maximum(at, 0), mask=at < 0)
    for name in PROVENANCE_SCHEMA.names:
        table = table.append_column(name, pc.take(found.column(name), where) if found.num_rows else
                                    pa.nulls(n, pa.string()))
    return table


def classes_identity(classes: pa.Table, manifest: str | Path | None) -> pa.Table:
    """``classes.identity``: per label, the smallest identity of the shard manifest's rows with that
    label (aggregated by DuckDB over the streamed manifest); nulls without a manifest with provenance."""
    best: dict[int, str] = {}
    if manifest is not None and has_provenance(manifest):
        con = _manifest_view(manifest)
        best = dict(con.sql("SELECT label, min(identity) FROM m WHERE identity IS NOT NULL GROUP BY label").fetchall())
        con.close()
    return classes.append_column("identity", pa.array([best.get(x) for x in classes.column("label").to_pylist()],
                                                      type=pa.string()))


def add_provenance(table: pa.Table, classes: pa.Table, manifest: str | Path | None) -> tuple[pa.Table, pa.Table]:
    """``samples.source_path`` / ``samples.identity`` (by key) and ``classes.identity`` (by label) from the
    shard manifest ``--samples``; nulls without one or when it predates the provenance columns."""
    return samples_provenance(table, manifest), classes_identity(classes, manifest)
