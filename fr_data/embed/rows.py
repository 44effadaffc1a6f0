"""Writing embedded batches into their key rows of the ``embeddings.npy`` memmap, with every check on the keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from fr_data.embed.forward import BatchEmbedding
from fr_data.embed.images import ImageBatch
from fr_data.embed.keys import KeyTable
from fr_data.folders.embeddings_folder import EMBEDDINGS_INDEX_SCHEMA, OPTIONAL_INDEX_SCHEMA, POSE_COLUMNS
from fr_data.io.atomic import reserve
from fr_data.io.errors import DataError


class RowWriter:
    """Write embedded batches into their key rows of a ``.npy`` memmap (opened once D is known)."""

    def __init__(self, path: Path, keys: KeyTable, flip: bool, quality: bool = False, pose: bool = False):
        self.path, self.keys, self.flip = path, keys, flip
        n = len(keys)
        self.array: np.memmap | None = None
        self.filled = np.zeros(n, dtype=bool)
        self.norm = np.zeros(n, dtype=np.float32)
        self.flip_cos = np.full(n, np.nan, dtype=np.float32)
        self.resolution = np.zeros(n, dtype=np.float32)
        self.quality = np.full(n, np.nan, dtype=np.float32) if quality else None
        self.pose = {name: np.full(n, np.nan, dtype=np.float32) for name in POSE_COLUMNS} if pose else None

    def write(self, batch: ImageBatch, out: BatchEmbedding, resolution: torch.Tensor,
              quality: torch.Tensor | None = None,
              pose: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        pos = self._checked_positions(batch)
        self._check_features(batch, out)
        features = out.features.cpu().numpy().astype(np.float16)
        if self.array is None:
            self.array = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float16,
                                                   shape=(len(self.keys), features.shape[1]))
            reserve(self.path)  # a full disk fails here, not as a SIGBUS on a page of the map
        self.array[pos] = features
        self.filled[pos] = True
        self.norm[pos] = out.norm.cpu().numpy()
        if out.flip_cos is not None:
            self.flip_cos[pos] = out.flip_cos.cpu().numpy()
        self.resolution[pos] = resolution.cpu().numpy()
        if self.quality is not None and quality is not None:
            self.quality[pos] = quality.cpu().numpy()
        if self.pose is not None and pose is not None:
            for name, values in zip(POSE_COLUMNS, pose):
                self.pose[name][pos] = values

    def _checked_positions(self, batch: ImageBatch) -> np.ndarray:
        """Rows of the batch's keys; unknown, duplicate or relabelled keys raise DataError."""
        pos, found = self.keys.lookup(batch.keys)
        self._raise_first(batch, ~found, f"sample is not listed in {self.keys.source}")
        # every key is found from here on, so ``pos`` indexes the rows (a key sorting past the last one
        # has pos == N and must not reach the arrays)
        self._raise_first(batch, self.filled[pos] | _repeated(pos),
                          "duplicate sample key (seen earlier in this or another shard)")
        self._raise_first(batch, self.keys.labels[pos] != batch.labels.numpy(),
                          f"label differs from the one in {self.keys.source}")
        return pos

    @staticmethod
    def _raise_first(batch: ImageBatch, mask: np.ndarray, reason: str) -> None:
        bad = _first(mask)
        if bad is not None:
            raise DataError(batch.shards[bad], f"key {batch.keys[bad]}", reason)

    @staticmethod
    def _check_features(batch: ImageBatch, out: BatchEmbedding) -> None:
        bad = ~torch.isfinite(out.features).all(dim=1) | (out.norm <= 0) | ~torch.isfinite(out.norm)
        first_bad = _first(bad.cpu().numpy())
        if first_bad is not None:
            raise DataError(batch.shards[first_bad], f"key {batch.keys[first_bad]}",
                            "the model produced a zero or non-finite feature")

    def finish(self, allow_empty: bool = False) -> pa.Table:
        """Flush the array and return the index table; keys never written raise DataError.

        With ``allow_empty`` (a rank without samples) an empty table is returned and no array written.
        """
        missing = np.flatnonzero(~self.filled)
        if missing.size:
            some = [k.decode() for k in self.keys.keys[missing[:5]]]
            raise DataError(self.keys.source, f"key {some[0]}",
                            f"{missing.size} sample(s) listed here are missing from the shards, e.g. {some}")
        if self.array is None:
            if allow_empty:
                return self._table(EMBEDDINGS_INDEX_SCHEMA.empty_table().to_pydict(), 0)
            raise DataError(self.keys.source, "", "no samples to embed")
        self.array.flush()
        del self.array
        self.array = None
        n = len(self.keys)
        flip_cos = pa.array(self.flip_cos, pa.float32()) if self.flip else pa.nulls(n, pa.float32())
        return self._table({"key": self.keys.strings(), "label": pa.array(self.keys.labels),
                            "norm": pa.array(self.norm), "flip_cos": flip_cos,
                            "resolution": pa.array(self.resolution)}, n)

    def _table(self, columns: dict, n: int) -> pa.Table:
        """The index table: the declared columns, plus ``quality`` when scoring and ``yaw`` / ``roll`` when
        estimating pose (null where NaN)."""
        extra = {"quality": self.quality} if self.quality is not None else {}
        extra.update(self.pose or {})
        schema = EMBEDDINGS_INDEX_SCHEMA
        for name in extra:
            schema = schema.append(OPTIONAL_INDEX_SCHEMA.field(name))
        return pa.table({**columns, **{name: pa.array(values[:n], pa.float32(), from_pandas=True)
                                       for name, values in extra.items()}}, schema=schema)


def _repeated(pos: np.ndarray) -> np.ndarray:
    """True for every occurrence after the first of a value in ``pos``."""
    _, first = np.unique(pos, return_index=True)
    repeated = np.ones(len(pos), dtype=bool)
    repeated[first] = False
    return repeated


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None
