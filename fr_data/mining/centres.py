"""Class centres: the mean of a class's L2-normalised embeddings, re-normalised (insightface
``dataset_merge.py``), plus the per-sample and per-class measures built on them.

Every per-sample measure here is against class centres (an N x C search), never all N samples, so it
scales to millions of rows: centre sums are accumulated chunk by chunk from the memmap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fr_data.knn.topk import canonical_topk, drop_rows
from fr_data.mining.inputs import iter_chunks
from fr_data.mining.knnfn import KnnFn


@dataclass
class ClassIndex:
    """Dense class ids and the valid rows of each class.

    Attributes:
        labels: the C distinct labels, ascending; class id c stands for ``labels[c]``.
        of_sample: class id of every row (N,), valid or not.
        order: valid rows grouped by class id (ascending rows within a class).
        starts: (C + 1,) offsets of each class's rows in ``order``.
    """

    labels: np.ndarray
    of_sample: np.ndarray
    order: np.ndarray
    starts: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def counts(self) -> np.ndarray:
        """Valid rows per class."""
        return np.diff(self.starts)

    def rows(self, c: int) -> np.ndarray:
        """Valid rows of class id ``c``."""
        return self.order[self.starts[c]:self.starts[c + 1]]


@dataclass
class ClassRange:
    """The valid rows of the classes ``classes`` (a contiguous range of class ids) in class order: what a
    per-class measure of a rank holds, by position in ``rows`` (the slice of ``ClassIndex.order``)."""

    cindex: ClassIndex
    classes: range

    @property
    def rows(self) -> np.ndarray:
        s = self.cindex.starts
        return self.cindex.order[s[self.classes.start]:s[self.classes.stop]]

    def at(self, c: int) -> slice:
        """Positions of class ``c``'s rows in :attr:`rows`."""
        s, first = self.cindex.starts, self.cindex.starts[self.classes.start]
        return slice(int(s[c] - first), int(s[c + 1] - first))


def build_class_index(labels: np.ndarray, ok: np.ndarray) -> ClassIndex:
    """Group the rows flagged ``ok`` by label."""
    uniq, of_sample = np.unique(labels, return_inverse=True)
    of_sample = of_sample.astype(np.int32)
    valid = np.flatnonzero(ok)
    order = valid[np.argsort(of_sample[valid], kind="stable")]
    counts = np.bincount(of_sample[valid], minlength=len(uniq))
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ClassIndex(uniq.astype(np.int64), of_sample, order, starts)


@dataclass
class Centres:
    """Per-class sums and unit centres.

    Attributes:
        sums: (C, D) float64 sums of the valid unit vectors.
        counts: (C,) valid samples per class.
        unit: (C, D) float32 unit centres (zero for a class without valid samples).
        spread: (C,) mean cosine of a class's samples to its centre, ``|sum| / n`` (NaN if empty).
        active: class ids that have at least one valid sample (rows of ``db``).
        db: ``unit[active]``, the search database.
        sum_norm: (C,) ``|sums|``.
    """

    sums: np.ndarray
    counts: np.ndarray
    unit: np.ndarray
    spread: np.ndarray
    active: np.ndarray
    db: np.ndarray
    sum_norm: np.ndarray

    def leave_one_out(self, x: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Leave-one-out centre cosine of unit rows ``x`` of class ids ``own``."""
        return leave_one_out_cos(own_centre_dot(x, self.unit, own), self.sum_norm[own], self.counts[own])


def accumulate_sums(vectors: np.ndarray, of_sample: np.ndarray, num_classes: int,
                    chunk_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream the memmap once: class sums (float64) and the per-row ``ok`` and ``finite`` masks."""
    sums = np.zeros((num_classes, vectors.shape[1]), dtype=np.float64)
    ok = np.zeros(vectors.shape[0], dtype=bool)
    finite = np.zeros(vectors.shape[0], dtype=bool)
    for chunk in iter_chunks(vectors, chunk_rows):
        sl = slice(chunk.start, chunk.start + len(chunk.x))
        ok[sl], finite[sl] = chunk.ok, chunk.finite
        add_class_sums(sums, of_sample[sl], chunk.x)  # invalid rows are zero: they add nothing
    return sums, ok, finite


#: classes with more rows than this in one chunk are summed by ``np.add.reduceat`` (see add_class_sums)
LONG_SEGMENT = 256


def add_class_sums(sums: np.ndarray, cls: np.ndarray, x: np.ndarray) -> None:
    """``sums[c] += sum of rows of x with class c``: a float32 segment sum within the chunk (rows of a
    class added in row order), then a float64 accumulation across chunks.

    Small classes are added in passes by a row's rank within its class (pass r adds every class's r-th
    row), so no pass repeats a class and each is one vectorised gather-add; classes with more than
    :data:`LONG_SEGMENT` rows in the chunk go through ``np.add.reduceat``, whose cost per class is then
    amortised. Rows already grouped by class (sorted labels) are not gathered at all, and one row per
    class is no pass at all; ``np.add.reduceat`` alone pays tens of microseconds per class and
    ``np.add.at`` per element (100K classes: 44 s under load before, ~1 s now).
    """
    if len(cls) == 0:
        return
    if len(cls) == 1 or bool((cls[1:] >= cls[:-1]).all()):  # grouped labels (sorted shards): no gather
        cls_sorted, xs = cls, x
    else:
        order = np.argsort(cls, kind="stable")
        cls_sorted, xs = cls[order], x[order]
    first = np.r_[True, cls_sorted[1:] != cls_sorted[:-1]]
    starts = np.flatnonzero(first)
    lengths = np.diff(np.r_[starts, len(cls)])
    if len(starts) == len(cls):  # one row per class
        part = xs
    else:
        part = np.empty((len(starts), x.shape[1]), dtype=np.float32)
        long = lengths > LONG_SEGMENT
        if long.any():
            rows = np.repeat(long, lengths)  # sorted rows of the long classes
            part[long] = np.add.reduceat(xs[rows], np.r_[0, np.cumsum(lengths[long])[:-1]], axis=0)
        short = np.flatnonzero(~long)
        if len(short):
            segment = np.repeat(np.arange(len(starts)), lengths)  # each sorted row's class in the chunk
            rank = np.arange(len(cls)) - starts[segment]
            part[short] = xs[starts[short]]  # pass 0: each class's first row
            keep = ~np.repeat(long, lengths) & (rank > 0)
            by_rank = np.flatnonzero(keep)[np.argsort(rank[keep], kind="stable")]
            bounds = np.searchsorted(rank[by_rank], np.arange(1, LONG_SEGMENT + 2))
            for r in range(len(bounds) - 1):
                rows = by_rank[bounds[r]:bounds[r + 1]]
                if len(rows) == 0:
                    break
                part[segment[rows]] += xs[rows]
    present = cls_sorted[starts]
    if present[-1] - present[0] + 1 == len(present):  # consecutive class ids (sorted labels): no scatter
        sums[present[0]:present[-1] + 1] += part
    else:
        sums[present] += part


def make_centres(sums: np.ndarray, counts: np.ndarray, block: int = 8192) -> Centres:
    """Unit centres and spreads from class sums, in row blocks (no float64 temporary of the whole table:
    at 100K classes x 512 each one is 400 MB). When every class is active ``db`` is ``unit`` itself."""
    norm = np.empty(len(sums), dtype=np.float64)
    for s in range(0, len(sums), block):
        norm[s:s + block] = np.linalg.norm(sums[s:s + block], axis=1)
    active = np.flatnonzero((counts > 0) & (norm > 0))
    unit = np.zeros(sums.shape, dtype=np.float32)
    for s in range(0, len(sums), block):
        rows = slice(s, s + block)
        with np.errstate(divide="ignore", invalid="ignore"):
            part = sums[rows] / norm[rows, None]
        part[norm[rows] == 0] = 0.0  # an inactive class (no valid sample: a zero sum) stays zero
        unit[rows] = part
    spread = np.full(len(counts), np.nan, dtype=np.float32)
    spread[active] = (norm[active] / counts[active]).astype(np.float32)
    db = unit if len(active) == len(sums) else np.ascontiguousarray(unit[active])
    return Centres(sums, counts, unit, spread, active, db, norm)


def own_centre_dot(x: np.ndarray, unit: np.ndarray, own: np.ndarray, block: int = 4096) -> np.ndarray:
    """Row-wise ``x[i] . unit[own[i]]`` in row blocks (no (rows x D) gather of the whole chunk)."""
    out = np.empty(len(x), dtype=np.float64)
    for s in range(0, len(x), block):
        out[s:s + block] = np.einsum("ij,ij->i", x[s:s + block], unit[own[s:s + block]])
    return out


def leave_one_out_cos(x_dot_centre: np.ndarray, sum_norm: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cosine of a unit sample to its class centre computed without that sample.

    With S the class sum and c = S/|S| its unit centre, ``x.S = |S| (x.c)`` and
    ``cos(x, S - x) = (x.S - 1) / |S - x|`` where ``|S - x|^2 = |S|^2 - 2 x.S + 1``. Inputs are per
    sample: ``x.c``, ``|S|`` and the class size; NaN when the class has no other sample.
    """
    xs = x_dot_centre * sum_norm
    rest2 = np.maximum(sum_norm ** 2 - 2.0 * xs + 1.0, 0.0)
    out = np.full(len(xs), np.nan, dtype=np.float32)
    ok = (counts >= 2) & (rest2 > 1e-12)
    out[ok] = np.clip((xs[ok] - 1.0) / np.sqrt(rest2[ok]), -1.0, 1.0)
    return out


def nearest_classes(centres: Centres, knn: KnnFn) -> tuple[np.ndarray, np.ndarray]:
    """Nearest other class id and centre cosine for every class (-1 / NaN where undefined)."""
    return class_nearest(centres, *nearest_of_active(centres, knn))


def nearest_of_active(centres: Centres, knn: KnnFn,
                      span: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest other class id and centre cosine of the active classes ``span`` = ``[a, b)`` (positions in
    ``centres.active``; default all), as arrays over those classes (-1 / NaN where undefined)."""
    a, b = span or (0, len(centres.active))
    nearest = np.full(b - a, -1, dtype=np.int64)
    cos = np.full(b - a, np.nan, dtype=np.float32)
    if len(centres.active) < 2 or a == b:
        return nearest, cos
    sims, ids = top_others(knn, centres.db[a:b], centres.db, np.arange(a, b), 1)
    return centres.active[ids[:, 0]], sims[:, 0]


def class_nearest(centres: Centres, nearest: np.ndarray, cos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class arrays (all C classes) from :func:`nearest_of_active` over every active class."""
    c = len(centres.counts)
    out_near, out_cos = np.full(c, -1, dtype=np.int64), np.full(c, np.nan, dtype=np.float32)
    out_near[centres.active], out_cos[centres.active] = nearest, cos
    return out_near, out_cos


def top_others(knn: KnnFn, queries: np.ndarray, database: np.ndarray, own: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` database rows of each query other than its own row ``own[i]``: ``k + 1`` searched,
    the own row dropped (so a share of the queries can be searched against the whole database; the
    result equals ``exclude_self`` over all rows by the exactness of the search)."""
    res = knn(queries, database, min(k + 1, len(database)))
    sims, ids = np.array(res.sims, np.float32), np.array(res.ids, np.int64)
    drop_rows(sims, ids, own)
    return canonical_topk(sims, ids, k)


@dataclass
class CentreHits:
    """Sample-to-centre search results for a chunk of rows (class ids, not labels)."""

    nearest_other: np.ndarray
    nearest_other_cos: np.ndarray
    candidates: np.ndarray
    negatives: np.ndarray


def search_centres(x: np.ndarray, own: np.ndarray, centres: Centres, k: int, m: int,
                   knn: KnnFn) -> CentreHits:
    """Top ``k`` other-class centres of each row of ``x`` (own class removed).

    Returns the nearest other class, the first ``m`` as candidate classes for sample k-NN, and the
    ``k`` other-centre cosines (negatives for the instance FPR), all sorted by descending cosine.
    """
    k_req = min(k + 1, len(centres.active))
    res = knn(x, centres.db, k_req)
    ids = centres.active[np.asarray(res.ids)]
    sims = np.asarray(res.sims, dtype=np.float32)
    keep = np.argsort(ids == own[:, None], axis=1, kind="stable")[:, :k_req - 1]
    ids = np.take_along_axis(ids, keep, axis=1)
    sims = np.take_along_axis(sims, keep, axis=1)
    if ids.shape[1] == 0:
        empty = np.full(len(x), -1, dtype=np.int64)
        return CentreHits(empty, np.full(len(x), np.nan, np.float32), ids[:, :0], sims)
    return CentreHits(ids[:, 0], sims[:, 0], ids[:, :m], sims)
