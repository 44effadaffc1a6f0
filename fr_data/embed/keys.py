"""The sorted sample keys of an embedding run: they fix each sample's row in ``embeddings.npy``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fr_data.io.errors import DataError
from fr_data.io.parquet import read_table

#: Yields ``(key, label, image bytes)`` of one shard in file order.
ShardReader = Callable[[Path], Iterator[tuple[str, int, bytes]]]

_MANIFEST_COLUMNS = pa.schema([pa.field("key", pa.string(), nullable=False),
                               pa.field("label", pa.int64(), nullable=False)])


@dataclass(frozen=True)
class KeyTable:
    """The sorted keys (UTF-8 bytes, byte order = code-point order) and labels of an embedding run.

    Args:
        keys: ``np.bytes_`` array, strictly ascending.
        labels: int64 labels aligned with ``keys``.
        source: where the keys came from (a manifest or a shard folder), named in errors.
    """

    keys: np.ndarray
    labels: np.ndarray
    source: Path

    @classmethod
    def build(cls, keys: Sequence[str] | np.ndarray, labels: Sequence[int] | np.ndarray,
              source: str | os.PathLike) -> KeyTable:
        """Sort ``keys``/``labels`` by key; a duplicate key raises DataError naming ``source``."""
        raw = encode_keys(keys)
        order = np.argsort(raw, kind="stable")
        raw, lab = raw[order], np.asarray(labels, dtype=np.int64)[order]
        dup = np.flatnonzero(raw[1:] == raw[:-1])
        if dup.size:
            raise DataError(source, f"key {raw[dup[0]].decode()}", "duplicate key")
        return cls(raw, lab, Path(source))

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Row of each key (binary search) and whether the key is in the table at all."""
        query = encode_keys(keys)
        pos = np.searchsorted(self.keys, query)
        found = (pos < len(self.keys)) & (self.keys[np.minimum(pos, len(self.keys) - 1)] == query)
        return pos, found

    def strings(self) -> pa.Array:
        return pa.array(np.char.decode(self.keys, "utf-8") if len(self.keys) else [], pa.string())


def read_manifest(path: str | os.PathLike, shard_names: set[str] | None = None) -> KeyTable:
    """Keys and labels of a shard manifest (``samples.parquet``), optionally only of some shards.

    ``shard_names`` filters on the manifest's ``shard`` column (shard file names).
    """
    has_shard = "shard" in pq.read_schema(path).names
    if shard_names is not None and not has_shard:
        raise DataError(path, "", "manifest has no 'shard' column to split samples by shard")
    table = read_table(path, _MANIFEST_COLUMNS, columns=["key", "label"])
    if shard_names is not None:
        shard_col = pq.read_table(path, columns=["shard"]).column("shard")
        basenames = pc.replace_substring_regex(shard_col, pattern=".*/", replacement="")
        table = table.filter(pc.is_in(basenames, value_set=pa.array(sorted(shard_names), pa.string())))
    return KeyTable.build(table.column("key").to_pylist(), table.column("label").to_numpy(), path)


def scan_keys(shards: Sequence[Path], read: ShardReader) -> KeyTable:
    """Keys and labels found by reading ``shards`` (used when there is no manifest)."""
    keys: list[str] = []
    labels: list[int] = []
    for shard in shards:
        for key, label, _ in read(shard):
            keys.append(key)
            labels.append(label)
    source = shards[0].parent if shards else Path(".")
    return KeyTable.build(keys, labels, source)


def encode_keys(keys: Sequence[str]) -> np.ndarray:
    return np.asarray([k.encode("utf-8") for k in keys], dtype=np.bytes_) if len(keys) else np.zeros(0, "S1")
