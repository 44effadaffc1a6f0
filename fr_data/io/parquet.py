"""Parquet tables with declared pyarrow schemas, validated on write and on read.

Every manifest hardmine writes has a schema constant next to the code that produces it. ``write_table``
checks a table against it (column names, order-insensitive; types exact; nullability) and writes it
atomically; ``read_table`` checks the file against the same schema before handing it out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.io.atomic import atomic_path
from fr_data.io.errors import SchemaError

# Row-group size used for every manifest: DuckDB parallelises per row group and recommends
# 100K-1M rows per group; 128K rows keeps memory modest on 2-core machines.
ROW_GROUP_SIZE = 131_072


def conform(table: pa.Table, schema: pa.Schema, path: str | os.PathLike = "<table>") -> pa.Table:
    """Return ``table`` with ``schema``'s required columns, in its order and types.

    Extra columns are kept after the declared ones (manifests may carry joined attributes). A missing
    column, a type that cannot be cast safely, or a null in a non-nullable field raises SchemaError.
    """
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaError(path, "", f"missing column(s) {missing}; expected schema:\n{schema}")
    columns, fields = [], []
    for field in schema:
        col = table.column(field.name)
        if not col.type.equals(field.type):
            try:
                col = col.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(path, f"column {field.name!r}",
                                  f"type {col.type} does not cast to {field.type}: {exc}") from exc
        if not field.nullable and col.null_count:
            row = _first_null_row(col)
            raise SchemaError(path, f"column {field.name!r}, row {row}", "null in a non-nullable column")
        columns.append(col)
        fields.append(field)
    for name in table.column_names:
        if name not in schema.names:
            columns.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def write_table(table: pa.Table, path: str | os.PathLike, schema: pa.Schema,
                metadata: Mapping[str, Any] | None = None) -> pa.Table:
    """Validate ``table`` against ``schema`` and write it to ``path`` atomically.

    ``metadata`` values are stored as JSON in the Parquet key-value metadata. Returns the written table.
    """
    table = conform(table, schema, path)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta.update({k.encode(): json.dumps(v, default=str).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_SIZE, compression="zstd")
    return table


def read_table(path: str | os.PathLike, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file and validate it against ``schema`` (raises SchemaError naming the file)."""
    if not os.path.exists(path):
        raise SchemaError(path, "", "file does not exist")
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(path, "", f"not a readable Parquet file: {exc}") from exc
    wanted = schema if columns is None else pa.schema([schema.field(c) for c in columns if c in schema.names])
    return conform(table, wanted, path)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Return the JSON key-value metadata stored by ``write_table``."""
    raw = pq.read_schema(path).metadata or {}
    out = {}
    for k, v in raw.items():
        key = k.decode()
        if key.startswith("ARROW:") or key == "pandas":
            continue
        try:
            out[key] = json.loads(v)
        except ValueError:
            out[key] = v.decode(errors="replace")
    return out


def _first_null_row(col: pa.ChunkedArray) -> int:
    offset = 0
    for chunk in col.chunks:
        if chunk.null_count:
            mask = chunk.is_null().to_pylist()
            return offset + mask.index(True)
        offset += len(chunk)
    return -1


def concat_parquet(parts: Sequence[str | os.PathLike], target: str | os.PathLike, schema: pa.Schema) -> None:
    """Stream Parquet ``parts`` (validated one by one) into one file, atomically; memory = one part."""
    with atomic_path(target) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for part in parts:
                writer.write_table(read_table(part, schema), row_group_size=ROW_GROUP_SIZE)
