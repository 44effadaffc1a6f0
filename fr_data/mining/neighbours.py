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

from fr_data.knn.topk import select_topk
from fr_data.mining.blas import single_threaded_blas
from fr_data.mining.centres import ClassIndex, top_others
from fr_data.mining.inputs import UnitRows, read_rows
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
        """Merge ``sims[i, j]`` = similarity of sample ``rows[i]`` to sample ``cand[j]``.

        The result is the canonical top k of everything merged so far, whatever the order of the merges
        (so partial graphs built on several ranks merge into the single-process graph); a ``-inf``
        similarity (a sample against itself) is an empty slot."""
        sims = sims.astype(np.float32, copy=False)
        self.merge_lists(rows, sims, np.broadcast_to(cand, sims.shape))

    def merge_lists(self, rows: np.ndarray, sims: np.ndarray, ids: np.ndarray) -> None:
        """Merge per-row candidate lists (``ids[i, j]`` with similarity ``sims[i, j]``) into ``rows``."""
        all_s = np.concatenate([self.sims[rows], sims], axis=1)
        all_i = np.concatenate([self.ids[rows], ids], axis=1)
        all_i = np.where(np.isneginf(all_s), -1, all_i)
        self.sims[rows], self.ids[rows] = select_topk(all_s, all_i, self.sims.shape[1])


def visitors_by_class(candidates: np.ndarray, num_classes: int,
                      classes: range | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CSR of "which samples visit class c": ``rows[starts[c]:starts[c+1]]`` (ascending rows).

    ``candidates`` is (N, m) class ids (-1 = none) of each sample's nearest other classes; with
    ``classes``, only the visits of those classes are kept (the others' lists are empty)."""
    lists = VisitorLists(num_classes, classes)
    lists.add(0, candidates)
    return lists.csr()


class VisitorLists:
    """:func:`visitors_by_class` built from the candidate table's row blocks as they arrive (a rank of a
    distributed run keeps the visits of its own classes only, never the whole table)."""

    def __init__(self, num_classes: int, classes: range | None = None):
        self.num_classes = num_classes
        self.lo, self.hi = (0, num_classes) if classes is None else (classes.start, classes.stop)
        self.samples: list[np.ndarray] = []
        self.classes: list[np.ndarray] = []

    def add(self, start: int, candidates: np.ndarray) -> None:
        """Rows ``start .. start + len(candidates)`` of the (N, m) candidate table."""
        m = candidates.shape[1]
        cls = candidates.reshape(-1)
        keep = np.flatnonzero((cls >= self.lo) & (cls < self.hi))
        self.samples.append(start + keep // max(m, 1))
        self.classes.append(cls[keep])

    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        sample = np.concatenate([np.empty(0, np.int64), *self.samples]).astype(np.int64, copy=False)
        cls = np.concatenate([np.empty(0, np.int64), *self.classes]).astype(np.int64, copy=False)
        self.samples, self.classes = [], []
        order = np.lexsort((sample, cls))
        counts = np.bincount(cls, minlength=self.num_classes)
        return sample[order], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def visit_counts(candidates: np.ndarray, num_classes: int) -> np.ndarray:
    """How many samples visit each class (its visitor list's length)."""
    cls = candidates.reshape(-1)
    return np.bincount(cls[cls >= 0], minlength=num_classes).astype(np.int64)


class CandidateNeighbours:
    """ClassVisitor that builds the candidate k-NN graph (own class + visiting samples) from the classes
    ``classes`` (default all; a rank of a distributed run builds the part of the graph its classes give).

    The top-k lists are held for all ``n`` rows (:attr:`topk`), or with ``segments`` for the rows the
    graph can touch (:func:`touched_rows`) cut at the ``bounds`` where the ranks' row shares start, one
    list per share held apart (:meth:`segment`, :meth:`drop`), so a rank can hand each share's lists to
    its owner and free them."""

    def __init__(self, vectors: np.ndarray, n: int, k: int, visitors: tuple[np.ndarray, np.ndarray],
                 classes: range | None = None, segments: list[np.ndarray] | None = None,
                 bounds: np.ndarray | None = None):
        self.vectors = vectors
        self.topk = TopK.empty(n, k) if segments is None else None
        self.segments = segments
        self.bounds = bounds
        self.parts = None if segments is None else [TopK.empty(len(r), k) for r in segments]
        self.visit_rows, self.visit_starts = visitors
        self.classes = classes

    def _merge(self, rows: np.ndarray, sims: np.ndarray, cand: np.ndarray) -> None:
        if self.parts is None:
            self.topk.merge(rows, sims, cand)
            return
        seg = np.searchsorted(self.bounds, rows, side="right") - 1
        for s in np.unique(seg):
            pick = seg == s
            self.parts[s].merge(np.searchsorted(self.segments[s], rows[pick]), sims[pick], cand)

    def visit(self, c: int, rows: np.ndarray, x: np.ndarray, gram: np.ndarray) -> None:
        if self.classes is not None and c not in self.classes:
            return
        own = gram.copy()
        np.fill_diagonal(own, -np.inf)
        self._merge(rows, own, rows)
        vis = self.visit_rows[self.visit_starts[c]:self.visit_starts[c + 1]]
        if len(vis):
            self._merge(vis, read_rows(self.vectors, vis) @ x.T, rows)

    def segment(self, s: int) -> tuple[np.ndarray, TopK]:
        """The rows of segment ``s`` and their lists (a row without a neighbour holds only empty slots,
        which change nothing when merged)."""
        return self.segments[s], self.parts[s]

    def drop(self, s: int) -> None:
        """Free segment ``s`` (handed on)."""
        self.segments[s] = np.empty(0, np.int64)
        self.parts[s] = TopK.empty(0, self.parts[s].ids.shape[1])


def touched_rows(cindex: ClassIndex, classes: range, visitors: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Sorted rows whose top k the candidate search of ``classes`` can change: their rows and visitors."""
    if len(classes) == 0:
        return np.empty(0, np.int64)
    own = cindex.order[cindex.starts[classes.start]:cindex.starts[classes.stop]]
    vis = visitors[0][visitors[1][classes.start]:visitors[1][classes.stop]]
    return np.union1d(own, vis).astype(np.int64)


def class_costs(counts: np.ndarray, visits: np.ndarray) -> np.ndarray:
    """Multiply-adds of each class in the candidate pass (up to D): its Gram plus its visitors' block
    (``visits``: :func:`visit_counts`)."""
    return counts.astype(np.float64) * (counts + visits)


def class_pass(vectors: np.ndarray, cindex: ClassIndex, visitors: Sequence[ClassVisitor],
               classes: range | None = None) -> None:
    """Read each class of ``classes`` (default all) once, in class-id order, and hand its rows, vectors
    and Gram to ``visitors``.

    The many tiny matrix products run with single-threaded BLAS (see ``blas``): a class's products are
    then the same whichever rank computes them.
    """
    with single_threaded_blas():
        for c in classes if classes is not None else range(cindex.num_classes):
            rows = cindex.rows(c)
            if len(rows) == 0:
                continue
            x = read_rows(vectors, rows)
            gram = x @ x.T
            for v in visitors:
                v.visit(c, rows, x, gram)


def exact_neighbours(vectors: np.ndarray, valid_rows: np.ndarray, k: int, knn: KnnFn) -> TopK:
    """Exact self-excluded k-NN among all valid rows (small N: the rows are held in RAM)."""
    out = TopK.empty(vectors.shape[0], k)
    sims, ids = exact_share(vectors, valid_rows, k, knn, (0, len(valid_rows)), stream=False)
    out.sims[valid_rows, :sims.shape[1]], out.ids[valid_rows, :ids.shape[1]] = sims, ids
    return out


def exact_share(vectors: np.ndarray, valid_rows: np.ndarray, k: int, knn: KnnFn, span: tuple[int, int],
                stream: bool) -> tuple[np.ndarray, np.ndarray]:
    """Exact self-excluded k-NN among all valid rows for the queries ``valid_rows[a:b]`` (``span``): the
    (b - a, min(k, n_valid - 1)) similarities and row numbers.

    ``stream``: read the database from the memmap chunk by chunk (:class:`UnitRows`, a rank's share of a
    distributed run) instead of holding all valid rows in RAM; the result is the same.
    """
    a, b = span
    k_eff = max(0, min(k, len(valid_rows) - 1))
    if k_eff == 0 or a == b:
        return np.zeros((b - a, k_eff), np.float32), np.zeros((b - a, k_eff), np.int64)
    database = UnitRows(vectors, valid_rows) if stream else read_rows(vectors, valid_rows)
    sims, ids = top_others(knn, database[a:b], database, np.arange(a, b), k_eff)
    return sims, valid_rows[ids]
