"""Exact re-scoring of k-NN candidates, so that the tie rule holds whatever the BLAS did.

A backend's float32 GEMM (or fp16/bf16 product) scores the same pair differently depending on how the
library blocks the product: two identical database rows that land in different chunks, tiles or kernel
edges can come back one ulp apart, and "descending similarity, ties by smaller id" would then depend on
the machine. ``knn_search`` therefore treats every backend's scores as *approximate*: it keeps a few
more candidates than asked for, re-scores them here from the stored vectors, and orders by the re-scored
values.

Exact score: the inner product of the stored rows computed in float64 as element products (exact for
float16/float32 inputs) summed along D by numpy's pairwise summation, whose order depends only on D.
Identical rows therefore get bit-identical scores, and the float32 rounding of that value is what
``KnnResult.sims`` holds.

Completeness: a row the backend did not return scored at most the lowest kept candidate's approximate
score, so its exact score is at most that plus the backend's error bound
(:func:`score_error`, times the query norm and the largest database row norm). A query row whose k-th
exact score clears that bound by a float32 ulp is final; the others are searched again with a wider
candidate list (:func:`open_rows` finds them).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

# float32 unit roundoff
U32 = 2.0 ** -24
# Query rows re-scored per block: bounds the (rows, candidates, D) float64 gather (32 x 41 x 512 = 5 MiB;
# measured fastest of 32 / 128 / 512 on the 2-core development machine).
RESCORE_BLOCK = 32
# Threads re-scoring blocks at once (at most the machine's cores).
MAX_THREADS = 8


def float32_score_error(dim: int) -> float:
    """Bound on |float32 inner product - exact| relative to ``|q| * |x|`` for D = ``dim``.

    Any summation order of D float32 products errs by at most gamma_D * sum|q_i x_i| <= gamma_D |q||x|
    (Higham, "Accuracy and Stability of Numerical Algorithms", section 3.1), gamma_D = D u / (1 - D u);
    four more u cover rounding float64 inputs to float32 and the final rounding.
    """
    n = dim + 4
    return n * U32 / (1.0 - n * U32)


def score_error(backend: Any, dim: int) -> float:
    """The backend's ``score_error(dim)``; backends without one are taken to compute in float32."""
    method = getattr(backend, "score_error", None)
    return float(method(dim)) if method is not None else float32_score_error(dim)


def exact_scores(queries: np.ndarray, database: np.ndarray, ids: np.ndarray,
                 block: int = RESCORE_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Float64 inner products of each query row with its candidate database rows.

    Args:
        queries: (nq, D) stored query rows (any float dtype, memmap ok).
        database: (N, D) stored database rows.
        ids: (nq, m) candidate row numbers, all valid.
        block: query rows per gather.

    Returns:
        (scores float64 (nq, m), query norms float64 (nq,)).
    """
    scores = np.empty(ids.shape, np.float64)
    norms = np.empty(len(ids), np.float64)

    def one(r0: int) -> None:
        r1 = min(len(ids), r0 + block)
        q = np.asarray(queries[r0:r1], dtype=np.float64)
        scores[r0:r1] = pair_products(q, gather_rows(database, ids[r0:r1]))
        norms[r0:r1] = np.sqrt(np.square(q).sum(axis=1))

    starts = range(0, len(ids), block)
    if len(starts) < 2:
        for r0 in starts:
            one(r0)
        return scores, norms
    # numpy releases the GIL in the copies and loops: blocks run in parallel, each computed the same way
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, os.cpu_count() or 1)) as pool:
        list(pool.map(one, starts))
    return scores, norms


def gather_rows(database: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(n, m, D) float64 copy of ``database[ids]``."""
    return np.asarray(database[ids], dtype=np.float64)


def pair_products(q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``sum_d q[i, d] * rows[i, j, d]`` in float64, one fixed summation order for every (i, j).

    ``rows`` (contiguous, float64) is overwritten. No BLAS: a GEMM may sum different output columns in
    different orders, which is the very effect being removed.
    """
    rows *= q[:, None, :]
    return rows.sum(axis=2)


def open_rows(last_approx: np.ndarray, kth_exact: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """Rows whose exact top k may still miss a row the backend did not return.

    Args:
        last_approx: (n,) the lowest approximate score among each row's kept candidates.
        kth_exact: (n,) float32 exact score at place k after re-scoring.
        tolerance: (n,) the backend's error bound for the row (absolute).

    A row is final when every unreturned row's exact score (<= last_approx + tolerance) rounds to a
    float32 strictly below the k-th: then it can neither outscore nor tie the k-th candidate.
    """
    kth = kth_exact.astype(np.float32)
    below = kth.astype(np.float64) - np.spacing(np.abs(kth)).astype(np.float64)
    return np.flatnonzero(last_approx.astype(np.float64) + tolerance >= below)
