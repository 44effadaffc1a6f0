"""Parquet tables with declared pyarrow schemas, validated on write and on read.

Every manifest hardmine writes has a schema constant next to the code that produces it. ``write_table``
checks a table against it (column names, order-insensitive; types exact; nullability) and writes it
atomically; ``read_table`` checks the file against the same schema before handing it out. An ``optional``
schema declares columns a table may lack (files written before the column existed): each is checked like a
declared column when present.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fr_data.io.atomic import atomic_path
from fr_data.io.errors import SchemaError, one_line

# Row-group size used for every manifest: DuckDB parallelises per row group and recommends
# 100K-1M rows per group; 128K rows keeps memory modest on 2-core machines.
ROW_GROUP_SIZE = 131_072


def conform(table: pa.Table, schema: pa.Schema, path: str | os.PathLike = "<table>") -> pa.Table:
    """Return ``table`` with ``schema``'s required columns, in its order and types.

    Extra columns are kept after the declared ones (manifests may carry joined attributes). A missing
    column, a type that cannot be cast safely, or a null in a non-nullable field raises SchemaError.
    """
    _require_columns(schema.names, table.column_names, path)
    columns, fields = [], []
    for field in schema:
        col = table.column(field.name)
        if not col.type.equals(field.type):
            try:
                col = col.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                row = _first_uncastable_row(col, field.type)
                where = f"column {field.name!r}" + (f", row {row}" if row is not None else "")
                raise SchemaError(path, where, f"type {col.type} does not cast to {field.type}: {exc}") from None
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


def _require_columns(wanted: Sequence[str], present: Sequence[str], path: str | os.PathLike) -> None:
    missing = [name for name in wanted if name not in present]
    if missing:
        raise SchemaError(path, f"column {missing[0]!r}", f"missing column(s) {missing}; the file has {list(present)}")


def with_optional(schema: pa.Schema, optional: pa.Schema | None, names: Iterable[str]) -> pa.Schema:
    """``schema`` followed by the fields of ``optional`` that ``names`` (a table's or file's columns) holds."""
    if optional is None:
        return schema
    present = set(names)
    return pa.schema([*schema, *(f for f in optional if f.name in present and f.name not in schema.names)])


def write_table(table: pa.Table, path: str | os.PathLike, schema: pa.Schema,
                metadata: Mapping[str, Any] | None = None, optional: pa.Schema | None = None) -> pa.Table:
    """Validate ``table`` against ``schema`` (and the ``optional`` columns it has) and write it to ``path``
    atomically.

    ``metadata`` values are stored as JSON in the Parquet key-value metadata. Returns the written table.
    """
    table = conform(table, with_optional(schema, optional, table.column_names), path)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta.update({k.encode(): json.dumps(v, default=str).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_SIZE, compression="zstd")
    return table


def read_table(path: str | os.PathLike, schema: pa.Schema, columns: list[str] | None = None,
               optional: pa.Schema | None = None) -> pa.Table:
    """Read a Parquet file and validate it against ``schema`` and the ``optional`` columns it has (raises
    SchemaError naming the file)."""
    if not os.path.exists(path):
        raise SchemaError(path, "", "file does not exist")
    try:
        present = pq.read_schema(path).names
        schema = with_optional(schema, optional, present)
        wanted = schema if columns is None else pa.schema([schema.field(c) for c in columns if c in schema.names])
        _require_columns(wanted.names, present, path)
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(path, "", f"not a readable Parquet file: {one_line(exc)}") from None
    return conform(table, wanted, path)


def require_unique(table: pa.Table, column: str, path: str | os.PathLike) -> None:
    """Raise SchemaError naming the value and its first rows when ``column`` holds a value twice."""
    values = table.column(column)
    if pc.count_distinct(values, mode="all").as_py() == len(values):
        return
    counts = pc.value_counts(values)
    dup = next(v["values"].as_py() for v in counts if v["counts"].as_py() > 1)
    rows = pc.indices_nonzero(pc.equal(values, dup) if dup is not None else pc.is_null(values)).to_pylist()
    raise SchemaError(path, f"{column} {dup}, rows {rows[:5]}", f"{column} occurs more than once ({len(rows)} rows)")


def require_non_negative(table: pa.Table, column: str, path: str | os.PathLike) -> None:
    """Raise SchemaError naming the first row where ``column`` is negative."""
    bad = pc.indices_nonzero(pc.less(table.column(column), 0)).to_pylist()
    if bad:
        raise SchemaError(path, f"column {column!r}, row {bad[0]}",
                          f"{len(bad)} negative value(s), e.g. {table.column(column)[bad[0]].as_py()}")


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


def _first_uncastable_row(col: pa.ChunkedArray, to: pa.DataType) -> int | None:
    """The first row whose value does not cast safely to ``to`` (error path only: value by value within
    the first failing chunk); None when no single value fails (the types do not cast at all)."""
    offset = 0
    for chunk in col.chunks:
        try:
            chunk.cast(to, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            for i in range(len(chunk)):
                try:
                    chunk.slice(i, 1).cast(to, safe=True)
                except pa.ArrowNotImplementedError:
                    return None
                except pa.ArrowInvalid:
                    return offset + i
        offset += len(chunk)
    return None


def _first_null_row(col: pa.ChunkedArray) -> int:
    offset = 0
    for chunk in col.chunks:
        if chunk.null_count:
            mask = chunk.is_null().to_pylist()
            return offset + mask.index(True)
        offset += len(chunk)
    return -1


def concat_parquet(parts: Sequence[str | os.PathLike], target: str | os.PathLike, schema: pa.Schema,
                   optional: pa.Schema | None = None) -> None:
    """Stream Parquet ``parts`` (validated one by one) into one file, atomically; memory = one part.

    The file has ``schema``'s columns and then ``optional``'s; a part lacking an optional column (written
    before it existed) gets nulls there.
    """
    full = with_optional(schema, optional, [] if optional is None else optional.names)
    with atomic_path(target) as tmp:
        with pq.ParquetWriter(tmp, full, compression="zstd") as writer:
            for part in parts:
                table = read_table(part, schema, optional=optional)
                for field in full:
                    if field.name not in table.column_names:
                        table = table.append_column(field, pa.nulls(table.num_rows, field.type))
                writer.write_table(table.select(full.names), row_group_size=ROW_GROUP_SIZE)
