"""Streaming an opened embeddings folder for mining: chunks of rows, re-normalisation, validity checks.

Rows are read in chunks from the memmap and re-normalised in float32, so memory stays bounded whatever
N is. NaN/inf or (near) zero rows are "invalid": they stay in every output with nulls and are counted,
never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

#: Rows whose float32 norm is below this are "zero vectors".
MIN_NORM = 1e-6


class Chunk(NamedTuple):
    """Rows ``start .. start+len(x)`` of the memmap, float32 and re-normalised."""

    start: int
    x: np.ndarray
    ok: np.ndarray
    finite: np.ndarray


def iter_chunks(vectors: np.ndarray, chunk_rows: int) -> Iterator[Chunk]:
    """Yield chunks of float32 re-normalised rows with validity masks (invalid rows are set to 0)."""
    for start in range(0, vectors.shape[0], chunk_rows):
        x, ok, finite = normalise_rows(np.asarray(vectors[start:start + chunk_rows]))
        yield Chunk(start, x, ok, finite)


def normalise_rows(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2-normalise rows in float32; return ``(x, ok, finite)``; rows not ``ok`` become 0."""
    x = raw.astype(np.float32, copy=True)
    finite = np.isfinite(x).all(axis=1)
    x[~finite] = 0.0
    norm = np.linalg.norm(x, axis=1)
    ok = finite & (norm >= MIN_NORM)
    x[ok] /= norm[ok, None]
    x[~ok] = 0.0
    return x, ok, finite


def read_rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Float32 normalised copies of ``vectors[rows]`` (rows sorted; a contiguous run is sliced)."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        raw = np.asarray(vectors[rows[0]:rows[-1] + 1])
    else:
        raw = vectors[rows]
    return normalise_rows(raw)[0]


@dataclass
class Validity:
    """Which rows can be mined, and why the others cannot."""

    ok: np.ndarray
    n_nan: int
    n_zero: int
    first_bad_rows: list[int]


def validity_from_masks(ok: np.ndarray, finite: np.ndarray) -> Validity:
    """Summarise per-row masks collected while streaming the memmap."""
    bad = np.flatnonzero(~ok)
    n_nan = int((~finite).sum())
    return Validity(ok, n_nan, int(len(bad)) - n_nan, bad[:10].tolist())


class UnitRows:
    """Rows ``vectors[rows]`` as a read-only (n, D) float32 array of re-normalised rows, read on demand.

    The database of a search that must not hold all N rows in memory (each rank of a distributed run
    streams it from the memmap in chunks): ``view[a:b]`` and ``view[ids]`` (integer arrays of any shape)
    return exactly the values :func:`read_rows` gives for those rows, so a search over the view equals
    one over ``read_rows(vectors, rows)``.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, vectors: np.ndarray, rows: np.ndarray):
        self.vectors, self.rows = vectors, np.asarray(rows, np.int64)
        self.filename = getattr(vectors, "filename", None)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """All the rows at once (for a k-NN function that takes the whole database)."""
        x = self[:]
        return x if dtype is None else x.astype(dtype)

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        if isinstance(key, slice):
            return read_rows(self.vectors, self.rows[key])
        key = np.asarray(key)
        flat = self.rows[key.reshape(-1)]
        order = np.argsort(flat, kind="stable")
        x = np.empty((len(flat), self.shape[1]), np.float32)
        x[order] = read_rows(self.vectors, flat[order])  # the memmap is read in ascending row order
        return x.reshape(*key.shape, self.shape[1])
