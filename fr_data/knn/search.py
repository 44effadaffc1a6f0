"""Exact inner-product top-k with bounded memory: ``knn_search``.

Loop order: database chunks outside (each prepared once, so a GPU backend keeps it resident), query
chunks inside, each answer merged into a running (nq, k) result with the chunk's row offset. Host
memory: one database chunk in the backend's dtype, one query chunk in float32, the (nq, k) result.
A float16 memmap is read and converted block by block; every block is checked for NaN/inf.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fr_data.io.errors import DataError
from fr_data.knn.backends import KnnBackend, default_backend
from fr_data.knn.topk import EMPTY_ID, KnnResult, canonical_topk, drop_self, empty_topk, merge_topk

# Rows converted per block while reading a database chunk (8 MiB of float16 at D=512).
READ_BLOCK = 8192


def knn_search(queries: np.ndarray, database: np.ndarray, k: int, *, backend: KnnBackend | None = None,
               exclude_self: bool = False, query_chunk: int | None = None,
               db_chunk: int | None = None) -> KnnResult:
    """Exact top-``k`` database rows by inner product for every query row.

    Inputs are expected L2-normalised by the caller (then inner product = cosine).

    Args:
        queries: (nq, D) float array or memmap (float16 ok).
        database: (N, D) float array or memmap (float16 ok).
        k: neighbours per query; at most N (N - 1 with ``exclude_self``).
        backend: a ``KnnBackend``; default ``default_backend()``.
        exclude_self: queries are the database rows themselves; drop id == row.
        query_chunk: query rows per backend call (default: the backend's).
        db_chunk: database rows per prepared chunk (default: the backend's).

    Returns:
        KnnResult with sims (nq, k) float32 and ids (nq, k) int64, descending sim, ties by smaller id.

    Raises:
        ValueError: bad shapes or k. DataError: a non-finite value, naming the file and row.
    """
    backend = backend or default_backend()
    _check_args(queries, database, k, exclude_self)
    qc, dc = query_chunk or backend.query_chunk, db_chunk or backend.db_chunk
    best_s, best_i = empty_topk(len(queries), k)
    for d0 in range(0, len(database), dc):
        d1 = min(len(database), d0 + dc)
        blocks = read_blocks(database, d0, d1, backend.host_dtype(database.dtype), "database")
        chunk = backend.prepare(blocks, d1 - d0)
        for q0 in range(0, len(queries), qc):
            q1 = min(len(queries), q0 + qc)
            q = read_rows(queries, q0, q1, np.float32, "queries")
            overlap = exclude_self and q0 < d1 and d0 < q1
            sims, ids = backend.search(q, chunk, k + int(overlap))
            sims, ids = np.array(sims, np.float32), np.asarray(ids, np.int64) + d0
            if overlap:
                drop_self(sims, ids, q0)
            merged = (merge_topk((best_s[q0:q1], best_i[q0:q1]), (sims, ids), k) if d0
                      else canonical_topk(sims, ids, k))
            best_s[q0:q1], best_i[q0:q1] = merged
        del chunk
    if (best_i == EMPTY_ID).any():
        raise RuntimeError("knn_search left empty result slots; backend returned too few candidates")
    return KnnResult(best_s, best_i)


def read_rows(array: np.ndarray, start: int, stop: int, dtype: np.dtype, what: str) -> np.ndarray:
    """Rows [start, stop) as a contiguous ``dtype`` array; DataError names the first non-finite row."""
    block = np.ascontiguousarray(array[start:stop], dtype=dtype)
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        row = start + int(np.argmin(finite))
        raise DataError(_source_name(array, what), f"row {row}",
                        f"non-finite value (NaN or inf) in the {what}")
    return block


def read_blocks(array: np.ndarray, start: int, stop: int, dtype: np.dtype, what: str,
                block: int = READ_BLOCK) -> Iterator[np.ndarray]:
    """Yield validated ``dtype`` blocks of rows [start, stop)."""
    for b0 in range(start, stop, block):
        yield read_rows(array, b0, min(stop, b0 + block), dtype, what)


def _source_name(array: np.ndarray, what: str) -> str:
    filename = getattr(array, "filename", None)
    return str(filename) if filename else f"<{what}>"


def _check_args(queries: np.ndarray, database: np.ndarray, k: int, exclude_self: bool) -> None:
    for name, a in (("queries", queries), ("database", database)):
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{name} must be a 2-D float array, got shape {a.shape} dtype {a.dtype}")
    if queries.shape[1] != database.shape[1]:
        raise ValueError(f"dimension mismatch: queries D={queries.shape[1]}, database D={database.shape[1]}")
    if exclude_self and queries.shape != database.shape:
        raise ValueError("exclude_self needs queries and database to be the same rows")
    limit = len(database) - int(exclude_self)
    if not isinstance(k, (int, np.integer)) or k < 1 or k > limit:
        extra = " (exclude_self leaves N - 1)" if exclude_self else ""
        raise ValueError(f"k={k} must be in [1, {limit}] for a database of N={len(database)} rows{extra}")
