"""Top-k results and the one canonical order every backend's output passes through.

Order rule (deterministic, backend independent): descending similarity, then ascending database id.
``knn_search`` applies it to exact similarities (``fr_data.knn.rescore``), so equal stored rows tie
exactly and come out smaller id first on every backend and BLAS; while candidates are collected it is
applied to the backends' approximate scores. Empty slots (fewer candidates than k so far) hold
similarity ``-inf`` and id ``-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMPTY_ID = -1


@dataclass(frozen=True)
class KnnResult:
    """The k nearest database rows of each query row.

    Attributes:
        sims: float32 (nq, k) inner products, row-wise descending (from ``knn_search``: the exact
            float64 inner products of the stored rows, rounded to float32).
        ids: int64 (nq, k) database row numbers; ties in ``sims`` are ordered by smaller id first.
    """

    sims: np.ndarray
    ids: np.ndarray

    @property
    def k(self) -> int:
        """Number of neighbours per query."""
        return int(self.ids.shape[1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def empty_topk(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return a (sims, ids) pair of shape (nq, k) holding only empty slots."""
    return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), EMPTY_ID, np.int64)


def canonical_topk(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by (descending sim, ascending id) and keep the first ``k`` columns.

    Args:
        sims: (nq, m) similarities, any float dtype (returned as float32).
        ids: (nq, m) integer ids (returned as int64).
        k: columns to keep; rows with fewer than ``k`` candidates are padded with empty slots.
    """
    sims = np.asarray(sims, np.float32)
    ids = np.asarray(ids, np.int64)
    if sims.shape[1] < k:
        pad_s, pad_i = empty_topk(sims.shape[0], k - sims.shape[1])
        sims, ids = np.hstack([sims, pad_s]), np.hstack([ids, pad_i])
    order = np.lexsort((ids, -sims), axis=1)[:, :k]
    return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)


def merge_topk(best: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray],
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge two per-row candidate lists (same rows) into the canonical top ``k``."""
    sims = np.hstack([best[0], np.asarray(new[0], np.float32)])
    ids = np.hstack([best[1], np.asarray(new[1], np.int64)])
    return canonical_topk(sims, ids, k)


def drop_self(sims: np.ndarray, ids: np.ndarray, first_row: int) -> None:
    """Blank (in place) every candidate whose id equals its query's global row number."""
    drop_rows(sims, ids, np.arange(first_row, first_row + ids.shape[0], dtype=np.int64))


def drop_rows(sims: np.ndarray, ids: np.ndarray, own: np.ndarray) -> None:
    """Blank (in place) every candidate of query row i whose id equals ``own[i]``."""
    hit = ids == np.asarray(own, np.int64)[:, None]
    sims[hit] = -np.inf
    ids[hit] = EMPTY_ID


def select_topk(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The canonical top ``k`` of each row of candidates ``(sims, ids)`` (an id at most once per row),
    whatever order the candidates come in.

    ``np.argpartition`` picks arbitrarily among values equal to the k-th largest; rows where such a tie
    crosses the cut are re-solved with a full canonical sort, so the result is exactly canonical.
    """
    if sims.shape[1] <= k:
        return canonical_topk(sims, ids, k)
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top_s, top_i = np.take_along_axis(sims, part, 1), np.take_along_axis(ids, part, 1)
    kth = top_s.min(axis=1, keepdims=True)
    tied = np.flatnonzero((sims == kth).sum(1) > (top_s == kth).sum(1))
    if len(tied):
        top_s[tied], top_i[tied] = canonical_topk(sims[tied], ids[tied], k)
    return canonical_topk(top_s, top_i, k)


def exact_topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` columns of a dense score matrix, honouring the tie rule even at the k-th place
    (:func:`select_topk` with the column numbers as ids)."""
    return select_topk(scores, np.broadcast_to(np.arange(scores.shape[1], dtype=np.int64), scores.shape), k)
