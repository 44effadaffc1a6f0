"""Sample-to-sample k-NN for the label vote and duplicate detection, with bounded memory.

Exact k-NN over all N samples costs N^2 D (about 2e15 multiply-adds at 2M x 512): too much for a CPU.
So two strategies, chosen by size (``NeighbourConfig.exact_max_n``):

* **exact** (small N): ``knn(X, X, k, exclude_self=True)`` over all valid rows.
* **candidates** (large N): a sample is compared with the samples of its own class and of its
  ``candidate_classes`` nearest other class centres. Near duplicates and the neighbours that out-vote a
  wrong label sit in exactly those classes (a mislabelled image lies next to its true identity's
  centre), so this is where the k-NN graph matters; the cost falls to about N (1 + m) n_avg D.

The candidate search runs class by class ("class-major"): class c's rows are read once, multiplied with
themselves (the class Gram matrix, reused by SDD-FIQA and positive-pair mining through ``ClassVisitor``
objects) and with its "visitors" (samples whose candidate classes include c); each result block is
merged into a running per-sample top-k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fr_data.mining.blas import single_threaded_blas
from fr_data.mining.centres import ClassIndex
from fr_data.mining.inputs import read_rows
from fr_data.mining.knnfn import KnnFn


class ClassVisitor(Protocol):
    """Something computed from one class's rows, unit vectors and Gram matrix (diagonal included)."""

    def visit(self, c: int, rows: np.ndarray, x: np.ndarray, gram: np.ndarray) -> None: ...


@dataclass
class TopK:
    """Running per-sample top-k (similarity descending, then id ascending); id -1 = empty slot."""

    sims: np.ndarray
    ids: np.ndarray

    @classmethod
    def empty(cls, n: int, k: int) -> TopK:
        return cls(np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64))

    def merge(self, rows: np.ndarray, sims: np.ndarray, cand: np.ndarray) -> None:
        """Merge ``sims[i, j]`` = similarity of sample ``rows[i]`` to sample ``cand[j]``."""
        k = self.sims.shape[1]
        all_s = np.concatenate([self.sims[rows], sims.astype(np.float32, copy=False)], axis=1)
        all_i = np.concatenate([self.ids[rows], np.broadcast_to(cand, sims.shape)], axis=1)
        if all_s.shape[1] > k:
            part = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
            all_s = np.take_along_axis(all_s, part, axis=1)
            all_i = np.take_along_axis(all_i, part, axis=1)
        order = np.lexsort((all_i, -all_s), axis=1)
        self.sims[rows] = np.take_along_axis(all_s, order, axis=1)
        self.ids[rows] = np.take_along_axis(all_i, order, axis=1)


def visitors_by_class(candidates: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of "which samples visit class c": ``rows[starts[c]:starts[c+1]]`` (ascending rows).

    ``candidates`` is (N, m) class ids (-1 = none) of each sample's nearest other classes.
    """
    n, m = candidates.shape
    sample = np.repeat(np.arange(n, dtype=np.int64), m)
    cls = candidates.reshape(-1)
    keep = cls >= 0
    sample, cls = sample[keep], cls[keep]
    order = np.lexsort((sample, cls))
    counts = np.bincount(cls, minlength=num_classes)
    return sample[order], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


class CandidateNeighbours:
    """ClassVisitor that builds the candidate k-NN graph (own class + visiting samples)."""

    def __init__(self, vectors: np.ndarray, n: int, k: int, visitors: tuple[np.ndarray, np.ndarray]):
        self.vectors = vectors
        self.topk = TopK.empty(n, k)
        self.visit_rows, self.visit_starts = visitors

    def visit(self, c: int, rows: np.ndarray, x: np.ndarray, gram: np.ndarray) -> None:
        own = gram.copy()
        np.fill_diagonal(own, -np.inf)
        self.topk.merge(rows, own, rows)
        vis = self.visit_rows[self.visit_starts[c]:self.visit_starts[c + 1]]
        if len(vis):
            self.topk.merge(vis, read_rows(self.vectors, vis) @ x.T, rows)


def class_pass(vectors: np.ndarray, cindex: ClassIndex, visitors: Sequence[ClassVisitor]) -> None:
    """Read each class once (in class-id order) and hand its rows, vectors and Gram to ``visitors``.

    The many tiny matrix products run with single-threaded BLAS (see ``blas``).
    """
    with single_threaded_blas():
        for c in range(cindex.num_classes):
            rows = cindex.rows(c)
            if len(rows) == 0:
                continue
            x = read_rows(vectors, rows)
            gram = x @ x.T
            for v in visitors:
                v.visit(c, rows, x, gram)


def exact_neighbours(vectors: np.ndarray, valid_rows: np.ndarray, k: int, knn: KnnFn) -> TopK:
    """Exact self-excluded k-NN among all valid rows (small N: the rows are held in RAM)."""
    n = vectors.shape[0]
    out = TopK.empty(n, k)
    k_eff = min(k, len(valid_rows) - 1)
    if k_eff <= 0:
        return out
    x = read_rows(vectors, valid_rows)
    res = knn(x, x, k_eff, exclude_self=True)
    out.sims[valid_rows, :k_eff] = np.asarray(res.sims, dtype=np.float32)
    out.ids[valid_rows, :k_eff] = valid_rows[np.asarray(res.ids)]
    return out
