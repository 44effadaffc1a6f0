"""Near-duplicate detection on the sample k-NN graph.

Greedy and order-dependent like FiftyOne's ``find_duplicates`` (walk samples in a fixed order; a kept
sample removes every not-yet-visited neighbour within the threshold), with the order made explicit:
the most typical image of its class first (highest leave-one-out centre cosine), so of a cross-class
pair the copy filed under the right identity is the one kept. Edges are symmetrised first, so a pair
is found even when only one side lists the other among its k neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Duplicates:
    """``of[i]`` = row of the kept twin of row i (-1 if i is kept), ``cos[i]`` their cosine (NaN)."""

    of: np.ndarray
    cos: np.ndarray

    def kinds(self, class_of: np.ndarray) -> np.ndarray:
        """``same_class`` / ``cross_class`` per removed row, None for kept rows (object array)."""
        return duplicate_kinds(self.of, class_of, class_of)


def duplicate_kinds(of: np.ndarray, own: np.ndarray, class_of: np.ndarray) -> np.ndarray:
    """``same_class`` / ``cross_class`` per removed row of ``of`` (the kept twins' rows, -1 for kept rows;
    ``own``: the classes of ``of``'s rows, e.g. a rank's share), None for kept rows (object array)."""
    out = np.full(len(of), None, dtype=object)
    dup = np.flatnonzero(of >= 0)
    same = own[dup] == class_of[of[dup]]
    out[dup[same]] = "same_class"
    out[dup[~same]] = "cross_class"
    return out


def duplicate_edges(ids: np.ndarray, sims: np.ndarray, cos: float) -> tuple[np.ndarray, np.ndarray,
                                                                           np.ndarray]:
    """Symmetric edges ``(a, b, cos)`` of the k-NN graph with similarity >= ``cos`` (a != b)."""
    return symmetric_edges(*forward_edges(ids, sims, cos))


def forward_edges(ids: np.ndarray, sims: np.ndarray, cos: float, first_row: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k-NN lists' entries with similarity >= ``cos``, as ``(row, neighbour, cos)`` in row-major
    order; ``ids``/``sims`` are the lists of rows ``first_row ..`` (a rank's share of the graph)."""
    rows, cols = np.nonzero((sims >= cos) & (ids >= 0))
    return first_row + rows.astype(np.int64), ids[rows, cols], sims[rows, cols]


def symmetric_edges(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`forward_edges` (of every row, in row order) made symmetric, self-loops dropped, each once."""
    a, b, s = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([s, s])
    keep = a != b
    return _sorted_edges(a[keep], b[keep], s[keep])


def _sorted_edges(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges sorted by ``(a, b)``, each once."""
    order = np.lexsort((b, a))
    a, b, s = a[order], b[order], s[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])][:len(a)]
    return a[first], b[first], s[first]


def find_duplicates(ids: np.ndarray, sims: np.ndarray, cos: float, priority: np.ndarray,
                    edges: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Duplicates:
    """Greedy near-duplicate removal.

    Args:
        ids: (N, k) neighbour rows (-1 = empty), ``sims`` their cosines.
        cos: similarity at or above which two samples are near duplicates.
        priority: (N,) score; higher is kept first (ties: lower row first). NaN counts as lowest.
        edges: the duplicate pairs decided elsewhere (symmetric ``(a, b, cos)``, e.g. confirmed by
            :mod:`fr_data.mining.pixel_check`) instead of the ``cos`` rule.
    """
    return remove_duplicates(len(ids), duplicate_edges(ids, sims, cos) if edges is None else edges, priority)


def remove_duplicates(n: int, edges: tuple[np.ndarray, np.ndarray, np.ndarray], priority: np.ndarray) -> Duplicates:
    """The greedy removal of :func:`find_duplicates` over ``n`` rows from symmetric ``edges``."""
    a, b, s = _sorted_edges(*edges)
    of = np.full(n, -1, dtype=np.int64)
    dcos = np.full(n, np.nan, dtype=np.float32)
    if len(a) == 0:
        return Duplicates(of, dcos)
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), -np.nan_to_num(priority, nan=-np.inf)))] = np.arange(n)
    starts = np.searchsorted(a, np.arange(n + 1))
    removed = np.zeros(n, dtype=bool)
    for i in np.unique(a)[np.argsort(rank[np.unique(a)])]:
        if removed[i]:
            continue
        nb, nb_cos = b[starts[i]:starts[i + 1]], s[starts[i]:starts[i + 1]]
        take = ~removed[nb] & (rank[nb] > rank[i])
        removed[nb[take]] = True
        of[nb[take]] = i
        dcos[nb[take]] = nb_cos[take]
    return Duplicates(of, dcos)
