"""Easy / hard pair mining: the teacher and student similarity sets of DDL
(Huang et al., ECCV 2020, https://arxiv.org/abs/2002.03662) and the hard groups of OT training.

* ``easy_pos``: same-class pairs with the highest cosine (below the duplicate threshold: a copy of the
  same photo is not an easy pair, it is a duplicate).
* ``hard_pos``: same-class pairs with the lowest cosine.
* ``hard_neg``: different-class pairs with the highest cosine, from the sample k-NN graph; pairs of
  classes flagged as merge candidates are skipped (probably the same person).

Suspected mislabels, removed duplicates and invalid vectors take no part. At most ``*_per_class`` pairs
of each kind are kept per class (by the class of the first sample), so the output is O(C).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fr_data.mining.centres import ClassRange


class PositiveExtremes:
    """ClassVisitor recording each sample's hardest and easiest same-class partner (rows; -1 = none).

    The duplicate threshold may only be known after the class pass (it is calibrated from the k-NN graph
    the pass builds), so the visit keeps each sample's ``easy_candidates`` most similar partners and
    :meth:`settle` picks the most similar one below the threshold.
    """

    def __init__(self, n: int, easy_candidates: int = 4, span: ClassRange | None = None):
        self.span = span
        n = n if span is None else len(span.rows)
        #: the row of each position (row i at i, or the class range's rows in class order)
        self.rows = np.arange(n, dtype=np.int64) if span is None else span.rows
        self.hard_id = np.full(n, -1, dtype=np.int64)
        self.hard_cos = np.full(n, np.nan, dtype=np.float32)
        self.top_id = np.full((n, easy_candidates), -1, dtype=np.int64)
        self.top_cos = np.full((n, easy_candidates), -np.inf, dtype=np.float32)
        self.easy_id = np.full(n, -1, dtype=np.int64)
        self.easy_cos = np.full(n, np.nan, dtype=np.float32)

    def visit(self, c: int, rows: np.ndarray, x: np.ndarray, gram: np.ndarray) -> None:
        if len(rows) < 2:
            return
        at = rows if self.span is None else self.span.at(c)
        g = gram.copy()
        np.fill_diagonal(g, np.inf)
        j = np.argmin(g, axis=1)
        self.hard_id[at], self.hard_cos[at] = rows[j], g[np.arange(len(rows)), j]
        np.fill_diagonal(g, -np.inf)
        m = min(self.top_id.shape[1], len(rows) - 1)
        order = np.argsort(-g, axis=1, kind="stable")[:, :m]
        self.top_id[at, :m] = rows[order]
        self.top_cos[at, :m] = np.take_along_axis(g, order, axis=1)

    def settle(self, duplicate_cos: float) -> None:
        """Easy partner = the most similar kept candidate with cosine below ``duplicate_cos``."""
        ok = (self.top_id >= 0) & (self.top_cos < duplicate_cos)
        j = np.argmax(ok, axis=1)
        rows = np.arange(len(ok))
        has = ok[rows, j]
        self.easy_id = np.where(has, self.top_id[rows, j], -1)
        self.easy_cos = np.where(has, self.top_cos[rows, j], np.nan).astype(np.float32)


@dataclass
class Pairs:
    """Mined pairs as row indices into the samples table."""

    a: np.ndarray
    b: np.ndarray
    cos: np.ndarray
    kind: np.ndarray


def top_per_group(group: np.ndarray, score: np.ndarray, q: int) -> np.ndarray:
    """Indices of the ``q`` highest ``score`` entries of each ``group`` value."""
    if q <= 0 or len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((-score, group))
    g = group[order]
    start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    rank = np.arange(len(g)) - np.repeat(start, np.diff(np.r_[start, len(g)]))
    return order[rank < q]


def _unique_unordered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    _, first = np.unique(lo * (np.int64(hi.max(initial=0)) + 1) + hi, return_index=True)
    return np.sort(first)


def _positive(ids: np.ndarray, cos: np.ndarray, eligible: np.ndarray, class_of: np.ndarray, q: int,
              best_high: bool, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs ``(row, ids[i], cos[i])`` of eligible rows, each unordered pair once, the best ``q`` per
    class of the first row. ``rows``: the row of each entry (default entry i is row i); within a class
    they must ascend, which keeps the choices among equal cosines those of row order."""
    rows = np.arange(len(ids), dtype=np.int64) if rows is None else rows
    i = np.flatnonzero(eligible[rows] & (ids >= 0))
    i = i[eligible[ids[i]]]
    a, b, s = rows[i], ids[i], cos[i]
    u = _unique_unordered(a, b)
    a, b, s = a[u], b[u], s[u]
    keep = top_per_group(class_of[a], s if best_high else -s, q)
    return a[keep], b[keep], s[keep]


def hard_negatives(nn_ids: np.ndarray, nn_sims: np.ndarray, eligible: np.ndarray, class_of: np.ndarray,
                   same_person: np.ndarray, first_row: int = 0,
                   block: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, its most similar eligible neighbour of another class (-1 / NaN if none).

    ``same_person[c]`` is the class that class c is a merge candidate with (-1 if none); the lists are
    those of rows ``first_row ..`` (a rank's share), ``eligible`` and ``class_of`` cover every row.
    """
    ids = np.full(len(nn_ids), -1, np.int64)
    cos = np.full(len(nn_ids), np.nan, np.result_type(nn_sims.dtype, np.float32))
    for s in range(0, len(nn_ids), block):  # row blocks: bounded (rows x k) temporaries
        nb = nn_ids[s:s + block]
        mine = slice(first_row + s, first_row + s + len(nb))
        safe = np.maximum(nb, 0)
        ca, cb = class_of[mine, None], class_of[safe]
        ok = (nb >= 0) & eligible[safe] & eligible[mine, None] & (cb != ca)
        ok &= (same_person[ca] != cb) & (same_person[cb] != ca)
        first = np.argmax(ok, axis=1)
        rows = np.arange(len(nb))
        has = ok[rows, first]
        ids[s:s + block] = np.where(has, nb[rows, first], -1)
        cos[s:s + block] = np.where(has, nn_sims[s:s + block][rows, first], np.nan)
    return ids, cos


def mine_pairs(ext: PositiveExtremes, neg_id: np.ndarray, neg_cos: np.ndarray, eligible: np.ndarray,
               class_of: np.ndarray, per_class: tuple[int, int, int]) -> Pairs:
    """Select ``easy_pos`` / ``hard_pos`` / ``hard_neg`` pairs, ``per_class`` = their counts per class."""
    easy, hard = positive_pairs(ext, eligible, class_of, per_class)
    return assemble_pairs(easy, hard, negative_pairs(neg_id, neg_cos, eligible, class_of, per_class))


Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


def positive_pairs(ext: PositiveExtremes, eligible: np.ndarray, class_of: np.ndarray,
                   per_class: tuple[int, int, int]) -> tuple[Triple, Triple]:
    """The ``easy_pos`` and ``hard_pos`` pairs ``(a, b, cos)`` of the classes ``ext`` visited (settled),
    ordered by class: those of consecutive class ranges concatenate into the pairs of the union."""
    return (_positive(ext.easy_id, ext.easy_cos, eligible, class_of, per_class[0], True, ext.rows),
            _positive(ext.hard_id, ext.hard_cos, eligible, class_of, per_class[1], False, ext.rows))


def negative_pairs(neg_id: np.ndarray, neg_cos: np.ndarray, eligible: np.ndarray, class_of: np.ndarray,
                   per_class: tuple[int, int, int]) -> Triple:
    """The ``hard_neg`` pairs from every row's hard negative (:func:`hard_negatives`)."""
    return _positive(neg_id, neg_cos, eligible, class_of, per_class[2], True)


def assemble_pairs(easy: Triple, hard: Triple, neg: Triple) -> Pairs:
    """The three kinds in one table, kind by kind."""
    parts = [(*easy, "easy_pos"), (*hard, "hard_pos"), (*neg, "hard_neg")]
    return Pairs(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                 np.concatenate([p[2] for p in parts]).astype(np.float32),
                 np.concatenate([np.full(len(p[0]), p[3], dtype=object) for p in parts]))
