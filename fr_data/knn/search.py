"""Exact inner-product top-k with bounded memory: ``knn_search``.

Loop order: database chunks outside (each prepared once, so a GPU backend keeps it resident), query
chunks inside, each answer merged into a running (nq, k + MARGIN) candidate list with the chunk's row
offset. The candidates are then re-scored exactly from the stored rows and ordered by that score
(``fr_data.knn.rescore``; on a CUDA torch backend on the device, with the same values:
``fr_data.knn.device_rescore``); rows whose k-th place is not settled by the backend's error bound are searched
again with four times the candidates. Host memory: one database chunk in the backend's dtype, one query
chunk in float32, the candidate lists. A float16 memmap is read and converted block by block; every
block is checked for NaN/inf.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fr_data.io.errors import DataError
from fr_data.knn.backends import KnnBackend, NumpyBackend, default_backend
from fr_data.knn.rescore import exact_scores, open_rows, score_error
from fr_data.knn.topk import EMPTY_ID, KnnResult, canonical_topk, drop_rows, empty_topk, merge_topk

# Rows converted per block while reading a database chunk (8 MiB of float16 at D=512).
READ_BLOCK = 8192
# Candidates kept beyond k for the exact re-scoring (rows whose band is not closed are widened).
MARGIN = 8


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
        KnnResult with sims (nq, k) float32 and ids (nq, k) int64. ``sims`` are the exact inner products
        of the stored rows (float64, rounded to float32, see ``fr_data.knn.rescore``), so equal rows
        score equally on every backend and machine; order: descending sim, ties by smaller id.

    Raises:
        ValueError: bad shapes or k. DataError: a non-finite value, naming the file and row.
    """
    backend = backend or default_backend()
    _check_args(queries, database, k, exclude_self)
    chunks = (query_chunk or backend.query_chunk, db_chunk or backend.db_chunk)
    own = np.arange(len(queries), dtype=np.int64) if exclude_self else None
    sims, ids = _exact_topk(queries, database, k, backend, chunks, own, MARGIN)
    return KnnResult(sims, ids)


def _exact_topk(queries: np.ndarray, database: np.ndarray, k: int, backend: KnnBackend,
                chunks: tuple[int, int], own: np.ndarray | None,
                margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k by exact score: ``k + margin`` approximate candidates, re-scored, open rows widened."""
    limit = len(database) - int(own is not None)
    want = max(k, min(limit, k + margin, getattr(backend, "max_k", None) or limit))
    approx, cand, db_norm = _candidates(queries, database, want, backend, chunks, own)
    exact, q_norm = _rescore(backend, queries, database, cand)
    sims, ids = canonical_topk(exact.astype(np.float32), cand, k)
    if want == limit:
        return sims, ids
    tolerance = score_error(backend, database.shape[1]) * q_norm * db_norm
    rows = open_rows(approx[:, -1], sims[:, -1], tolerance)
    if len(rows):
        cap = getattr(backend, "max_k", None)
        if cap is not None and cap < min(limit, 4 * want):  # e.g. faiss-gpu's k limit: widen on the CPU
            backend = NumpyBackend()
            chunks = (backend.query_chunk, backend.db_chunk)
        sub_own = None if own is None else own[rows]
        sims[rows], ids[rows] = _exact_topk(np.asarray(queries[rows]), database, k, backend, chunks, sub_own,
                                            4 * want - k)
    return sims, ids


def _rescore(backend: KnnBackend, queries: np.ndarray, database: np.ndarray,
             cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores of the candidates on the backend's device when it offers that (the same values as
    the host's :func:`exact_scores`), else on the host."""
    on_device = getattr(backend, "rescore_exact", None)
    done = on_device(queries, database, cand) if on_device is not None else None
    return done if done is not None else exact_scores(queries, database, cand)


def _candidates(queries: np.ndarray, database: np.ndarray, k: int, backend: KnnBackend,
                chunks: tuple[int, int], own: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
    """The backend's approximate canonical top ``k`` per query, and the largest database row norm.

    Loop order: database chunks outside (each prepared once), query chunks inside, each answer merged
    into the running (nq, k) result with the chunk's row offset. ``own``: each query's own database
    row, dropped from its candidates (``exclude_self``), or None.
    """
    qc, dc = chunks
    best_s, best_i = empty_topk(len(queries), k)
    norm = [0.0]
    for d0 in range(0, len(database), dc):
        d1 = min(len(database), d0 + dc)
        blocks = _max_norm(read_blocks(database, d0, d1, backend.host_dtype(database.dtype), "database"), norm)
        chunk = backend.prepare(blocks, d1 - d0)
        for q0 in range(0, len(queries), qc):
            q1 = min(len(queries), q0 + qc)
            q = read_rows(queries, q0, q1, np.float32, "queries")
            mine = None if own is None else own[q0:q1]
            overlap = mine is not None and bool(((mine >= d0) & (mine < d1)).any())
            sims, ids = backend.search(q, chunk, k + int(overlap))
            sims, ids = np.array(sims, np.float32), np.asarray(ids, np.int64) + d0
            if overlap:
                drop_rows(sims, ids, mine)
            merged = (merge_topk((best_s[q0:q1], best_i[q0:q1]), (sims, ids), k) if d0
                      else canonical_topk(sims, ids, k))
            best_s[q0:q1], best_i[q0:q1] = merged
        del chunk
    if (best_i == EMPTY_ID).any():
        raise RuntimeError("knn_search left empty result slots; backend returned too few candidates")
    return best_s, best_i, norm[0]


def _max_norm(blocks: Iterator[np.ndarray], norm: list[float]) -> Iterator[np.ndarray]:
    """Pass ``blocks`` through, keeping the largest row norm seen in ``norm[0]`` (float64)."""
    for block in blocks:
        if len(block):
            norm[0] = max(norm[0], float(np.sqrt(np.square(block, dtype=np.float64).sum(axis=1).max())))
        yield block


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
