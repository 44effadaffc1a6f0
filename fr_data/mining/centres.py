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


def add_class_sums(sums: np.ndarray, cls: np.ndarray, x: np.ndarray) -> None:
    """``sums[c] += sum of rows of x with class c`` (sort + float32 reduceat within the chunk, then a
    float64 accumulation across chunks; no per-element scatter)."""
    if len(cls) == 0:
        return
    order = np.argsort(cls, kind="stable")
    cls_sorted = cls[order]
    starts = np.flatnonzero(np.r_[True, cls_sorted[1:] != cls_sorted[:-1]])
    sums[cls_sorted[starts]] += np.add.reduceat(x[order], starts, axis=0)


def make_centres(sums: np.ndarray, counts: np.ndarray) -> Centres:
    """Unit centres and spreads from class sums."""
    norm = np.linalg.norm(sums, axis=1)
    active = np.flatnonzero((counts > 0) & (norm > 0))
    unit = np.zeros(sums.shape, dtype=np.float32)
    unit[active] = (sums[active] / norm[active, None]).astype(np.float32)
    spread = np.full(len(counts), np.nan, dtype=np.float32)
    spread[active] = (norm[active] / counts[active]).astype(np.float32)
    return Centres(sums, counts, unit, spread, active, np.ascontiguousarray(unit[active]), norm)


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
