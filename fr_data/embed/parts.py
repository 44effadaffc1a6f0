"""Merging the per-rank parts of a distributed embedding run into one key-sorted array."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from fr_data.embed.keys import KeyTable, encode_keys
from fr_data.folders import embeddings_folder as ef
from fr_data.io.atomic import atomic_path, reserve
from fr_data.io.errors import DataError

MERGE_CHUNK_ROWS = 65_536


def merge_parts(parts_dir: str | os.PathLike, target: str | os.PathLike, expected: KeyTable | None = None,
                *, chunk_rows: int = MERGE_CHUNK_ROWS) -> pa.Table:
    """Merge ``rank-R.npy`` / ``rank-R.parquet`` parts (each sorted by key) into one key-sorted array.

    Writes ``target`` (a ``.npy``, temp name until complete) chunk by chunk: memory holds the keys and
    index columns plus ``chunk_rows`` embedding rows, never the whole array.

    Args:
        parts_dir: the folder holding the parts.
        target: the merged ``.npy`` file.
        expected: the full key table (from the manifest); the merged keys must equal it.
        chunk_rows: rows copied per step.

    Returns:
        The merged index table (ef.EMBEDDINGS_INDEX_SCHEMA), row ``i`` describing ``target[i]``.

    Raises:
        DataError: no parts, a part whose array and index disagree, parts of different widths, a key in
            two parts, or merged keys that differ from ``expected``.
    """
    tables, arrays, paths = _read_parts(Path(parts_dir))
    keys = encode_keys(pa.concat_arrays([t.column("key").combine_chunks() for t in tables]).to_pylist())
    order = np.argsort(keys, kind="stable")
    part_of = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])[order]
    row_of = np.concatenate([np.arange(t.num_rows) for t in tables])[order]
    sorted_keys = keys[order]
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if dup.size:
        raise DataError(paths[part_of[dup[0] + 1]], f"key {sorted_keys[dup[0]].decode()}",
                        "key embedded by two ranks (it is in two shards)")
    if expected is not None:
        _compare_keys(sorted_keys, expected, Path(parts_dir))
    dims = {a.shape[1] for a in arrays if a is not None}
    if len(dims) != 1:
        raise DataError(parts_dir, "", f"parts disagree on the embedding width or are all empty: {dims}")
    with atomic_path(target) as tmp:
        merged = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(keys), dims.pop()))
        reserve(tmp)
        for start in range(0, len(keys), chunk_rows):
            stop = min(start + chunk_rows, len(keys))
            part, rows = part_of[start:stop], row_of[start:stop]
            for p in np.unique(part):
                merged[start:stop][part == p] = arrays[p][rows[part == p]]
        merged.flush()
        del merged
    return pa.concat_tables(tables).take(pa.array(order))


def _read_parts(parts_dir: Path) -> tuple[list[pa.Table], list[np.ndarray | None], list[Path]]:
    """Index tables, memmapped arrays (None for empty parts) and index paths of ``rank-*`` parts, by rank."""
    parts = ef.list_parts(parts_dir)
    if not parts:
        raise DataError(parts_dir, "", "no rank-*.parquet parts to merge")
    tables, arrays = [], []
    for array_path, index_path in parts:
        table = ef.read_part_index(index_path)
        array = np.load(array_path, mmap_mode="r") if table.num_rows else None
        if array is not None and (array.ndim != 2 or array.shape[0] != table.num_rows):
            raise DataError(array_path, "", f"array shape {array.shape} does not match {table.num_rows} index rows")
        tables.append(table)
        arrays.append(array)
    return tables, arrays, [index for _, index in parts]
def _compare_keys(merged: np.ndarray, expected: KeyTable, where: Path) -> None:
    if len(merged) == len(expected) and bool(np.all(merged == expected.keys)):
        return
    missing = np.setdiff1d(expected.keys, merged)[:5]
    extra = np.setdiff1d(merged, expected.keys)[:5]
    raise DataError(expected.source, "", f"embedded keys ({len(merged)}, merged from {where}) differ from "
                    f"the {len(expected)} listed: missing e.g. {[k.decode() for k in missing]}, "
                    f"not listed e.g. {[k.decode() for k in extra]}")
