"""Seeded damage for the input-hardening tests: byte-level damage to a file, one defect in a table column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

BYTE_KINDS = ("bit_flips", "truncation", "zeroed_span", "appended_garbage")
COLUMN_KINDS = ("missing_column", "null", "duplicate", "wrong_type", "nan", "negative")


def damage_bytes(data: bytes, kind: str, rng: np.random.Generator, *, start: int = 0) -> bytes:
    """``data`` with one kind of byte damage at or after offset ``start`` (bit flips: 1-5 bits; a zeroed
    span: up to 40 bytes; appended garbage: up to 30 bytes)."""
    out = bytearray(data)
    if kind == "bit_flips":
        for pos in rng.integers(start, len(out), int(rng.integers(1, 6))).tolist():
            out[pos] ^= 1 << int(rng.integers(8))
    elif kind == "truncation":
        del out[int(rng.integers(start, len(out))):]
    elif kind == "zeroed_span":
        first = int(rng.integers(start, len(out)))
        out[first:first + 40] = bytes(len(out[first:first + 40]))
    elif kind == "appended_garbage":
        out += rng.integers(0, 256, int(rng.integers(1, 30)), dtype=np.uint8).tobytes()
    else:
        raise ValueError(kind)
    return bytes(out)


def applicable(kind: str, field: pa.Field) -> str:
    """``kind``, or ``"null"`` where it means nothing for the column (NaN or -3 in a non-integer column)."""
    return "null" if kind in ("nan", "negative") and not pa.types.is_integer(field.type) else kind


def damage_column(table: pa.Table, column: str, kind: str, row: int) -> pa.Table:
    """``table`` with one defect in ``column`` at ``row``: the column gone, a null, the next row's value
    (a duplicate), text in a number column (a list in a text column), NaN in a float copy, or -3
    (see :func:`applicable` for which kind a column gets)."""
    i = table.schema.get_field_index(column)
    field = table.schema.field(column)
    kind = applicable(kind, field)
    values = table.column(column).to_pylist()
    if kind == "missing_column":
        return table.remove_column(i)
    if kind in ("null", "duplicate", "negative"):
        values[row] = {"null": None, "duplicate": values[(row + 1) % len(values)], "negative": -3}[kind]
        return table.set_column(i, column, pa.array(values, pa.int64() if kind == "negative" else field.type))
    if kind == "wrong_type":
        if pa.types.is_string(field.type):
            return table.set_column(i, column, pa.array([[1, 2]] * len(values)))
        text = [str(v) for v in values]
        text[row] = "not-a-number"
        return table.set_column(i, column, pa.array(text))
    if kind == "nan":
        floats = [float(v) if isinstance(v, (int, float)) else 0.5 for v in values]
        floats[row] = float("nan")
        return table.set_column(i, column, pa.array(floats, pa.float64()))
    raise ValueError(kind)


def names_row(kind: str, field: pa.Field) -> bool:
    """Whether an error for this defect can name a row (a missing or list-typed column cannot)."""
    return kind != "missing_column" and not (kind == "wrong_type" and pa.types.is_string(field.type))
