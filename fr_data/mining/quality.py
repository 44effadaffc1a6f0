"""Per-sample quality scores computable from embeddings and labels alone.

* SDD-FIQA pseudo-label (Ou et al., CVPR 2021, https://arxiv.org/abs/2103.05977): the 1-D Wasserstein
  distance between a sample's intra-class and inter-class similarity distributions, ``sdd_samples``
  similarities each, over ``sdd_rounds`` rounds; each round is min-max scaled to 0-100 over the data set
  and the rounds are averaged. Intra similarities come from the class Gram matrix; inter similarities
  from a fixed random reference set of other-class samples (as in the paper's random negatives). Both
  sides use the same count per sample (fewer positives in small classes means fewer negatives too), so
  W1 is the mean absolute difference of the sorted samples.
* CR-FIQA certainty ratio (Boutros et al., CVPR 2023, https://arxiv.org/abs/2112.06592):
  ``CCS / (NNCCS + 1 + eps)`` with CCS the cosine to the own (leave-one-out) class centre and NNCCS the
  highest cosine to another class centre.
* Instance FPR (CIFP, Xu et al., CVPR 2021, https://arxiv.org/abs/2106.05519): the share of a sample's
  negative similarities (to the C - 1 other class centres) above the unified threshold at which the
  overall FPR over all samples equals ``target_fpr``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fr_data.mining.centres import ClassRange
from fr_data.mining.group import SOLO, Ranks


def wasserstein_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1-D W1 between equal-size empirical distributions along the last axis."""
    return np.abs(np.sort(a, axis=-1) - np.sort(b, axis=-1)).mean(axis=-1)


def cyclic_windows(rng: np.random.Generator, rounds: int, n_rows: int, pool: int, p: int,
                   exclude_self: bool) -> np.ndarray:
    """(rounds, n_rows, p) random p-subsets of ``range(pool)`` without replacement.

    Each round draws a random permutation; row i takes the p entries that follow its own position
    (``exclude_self``: row i is pool item i) or a random offset, cyclically. Every row thereby gets a
    uniformly random p-subset, in O(rounds * n_rows * p) work and memory.
    """
    perms = np.argsort(rng.random((rounds, pool)), axis=1)
    if exclude_self:
        start = inverse_permutations(perms)[:, :n_rows] + 1
    else:
        start = rng.integers(0, pool, size=(rounds, n_rows))
    pos = (start[:, :, None] + np.arange(p)) % pool
    return np.take_along_axis(perms[:, None, :], pos, axis=2)


def inverse_permutations(perms: np.ndarray) -> np.ndarray:
    """Row-wise inverse of permutations (``inv[r, perms[r, j]] = j``), by scatter instead of a sort."""
    inv = np.empty_like(perms)
    np.put_along_axis(inv, perms, np.broadcast_to(np.arange(perms.shape[1]), perms.shape), axis=1)
    return inv


class SddCollector:
    """ClassVisitor computing raw SDD-FIQA Wasserstein distances (rows, rounds); NaN where undefined.

    Rows are held by position: row ``i`` at ``i`` (``n`` rows), or with ``span`` the rows of a class range
    in class order (a rank's classes). Each class draws from its own generator ``default_rng([seed, c])``,
    so a class's values do not depend on which rank visits it or in what order."""

    def __init__(self, n: int, ref_x: np.ndarray, ref_class: np.ndarray, samples: int, rounds: int,
                 seed: int, span: ClassRange | None = None):
        self.span = span
        self.raw = np.full((n if span is None else len(span.rows), rounds), np.nan, dtype=np.float32)
        self.ref_x, self.ref_class = ref_x, ref_class
        self.samples, self.rounds = samples, rounds
        self.seed = seed

    def visit(self, c: int, rows: np.ndarray, x: np.ndarray, gram: np.ndarray) -> None:
        others = np.flatnonzero(self.ref_class != c)
        p = min(self.samples, len(rows) - 1, len(others))
        if p < 1:
            return
        n = len(rows)
        rng = np.random.default_rng([self.seed, c])
        pos = cyclic_windows(rng, self.rounds, n, n, p, exclude_self=True)
        intra = np.take_along_axis(gram[None], pos, axis=2)
        neg = cyclic_windows(rng, self.rounds, n, len(others), p, exclude_self=False)
        inter = np.take_along_axis((x @ self.ref_x.T)[:, others][None], neg, axis=2)
        self.raw[rows if self.span is None else self.span.at(c)] = wasserstein_equal(intra, inter).T


def sdd_scores(raw: np.ndarray, block: int = 65_536) -> np.ndarray:
    """Per-round min-max scaling of raw W1 to 0-100 over the data set, then the mean over rounds."""
    bounds = sdd_bounds(raw, block)
    if bounds is None:
        return np.full(len(raw), np.nan, dtype=np.float32)
    return sdd_scale(raw, *bounds, block=block)


def sdd_bounds(raw: np.ndarray, block: int = 65_536) -> tuple[np.ndarray, np.ndarray] | None:
    """Per round, the smallest and largest raw value over the rows defined in every round (None: no
    such row). The bounds of several parts of the rows combine by min / max, exactly."""
    rows_ok = ~np.isnan(raw).any(axis=1)
    if not rows_ok.any():
        return None
    lo = np.full(raw.shape[1], np.inf, raw.dtype)
    hi = np.full(raw.shape[1], -np.inf, raw.dtype)
    for s in range(0, len(raw), block):  # row blocks: no N x rounds temporaries
        part = raw[s:s + block][rows_ok[s:s + block]]
        if len(part):
            lo, hi = np.minimum(lo, part.min(axis=0)), np.maximum(hi, part.max(axis=0))
    return lo, hi


def sdd_scale(raw: np.ndarray, lo: np.ndarray, hi: np.ndarray, block: int = 65_536) -> np.ndarray:
    """:func:`sdd_scores` of ``raw``'s rows with the run's per-round bounds ``lo`` / ``hi``."""
    rows_ok = ~np.isnan(raw).any(axis=1)
    out = np.full(len(raw), np.nan, dtype=np.float32)
    span = np.where(hi > lo, hi - lo, 1.0)
    for s in range(0, len(raw), block):
        ok = rows_ok[s:s + block]
        with np.errstate(invalid="ignore"):
            scaled = 100.0 * (raw[s:s + block][ok] - lo) / span
        out[s:s + block][ok] = scaled.mean(axis=1)
    return out


def certainty_ratio(ccs: np.ndarray, nnccs: np.ndarray, eps: float) -> np.ndarray:
    """CR-FIQA ``CCS / (NNCCS + 1 + eps)`` (NaN propagates)."""
    return (ccs / (nnccs + 1.0 + eps)).astype(np.float32)


@dataclass
class UnifiedThreshold:
    """The CIFP unified threshold and how trustworthy it is.

    Attributes:
        value: threshold T; a negative counts as a false positive when its cosine is > T.
        false_positives: target number of false positives, ceil(target_fpr * total negatives).
        total_negatives: sum over valid samples of the number of other class centres.
        saturated: samples whose every stored negative is above T (their count is a lower bound,
            and T is exact only when this is 0).
    """

    value: float
    false_positives: int
    total_negatives: int
    saturated: int


def unified_threshold(negatives: np.ndarray, num_other: int, target_fpr: float,
                      ranks: Ranks = SOLO) -> UnifiedThreshold:
    """T such that the share of all negatives above it is ``target_fpr``.

    ``negatives`` holds each valid sample's highest other-centre cosines (rows of NaN for invalid
    samples); ``num_other`` is how many other centres each sample has in total (C_active - 1). Under
    several ``ranks`` each passes its share of the rows and all get the run's threshold: the exact
    ``k``-th largest finite value over every share (:func:`kth_largest`), with no rank holding more than
    its own share.
    """
    rows = ~np.isnan(negatives).all(axis=1)
    lo, hi = _finite_range(negatives)
    counts = ranks.sum_array("fpr_pool", np.array([int(rows.sum()), _count_at_least(negatives, -np.inf)],
                                                  np.int64))
    total = int(counts[0]) * int(num_other)
    size = int(counts[1])
    k = max(1, math.ceil(target_fpr * total))
    if size == 0:
        return UnifiedThreshold(float("nan"), k, total, 0)
    ranges = [r for r in ranks.gather_json("fpr_range", [lo, hi]) if r[0] is not None]
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if k >= size:
        t = lo
    else:
        t = kth_largest(k, lo, hi, lambda v, step: int(ranks.sum_array(
            f"fpr_select@{step}", np.array([_count_at_least(negatives, v)], np.int64))[0]))
    above = _count_above(negatives, t)
    saturated = ranks.sum_array("fpr_saturated", np.array([int(((above == negatives.shape[1]) & rows).sum())],
                                                          np.int64))
    return UnifiedThreshold(t, k, total, int(saturated[0]))


def kth_largest(k: int, lo: float, hi: float, count_at_least: Callable[[np.float32, int], int]) -> float:
    """The ``k``-th largest of a set of finite float32 values lying in ``[lo, hi]``, found by bisection on
    the float32 order: ``count_at_least(v, step)`` says how many values are ``>= v``. The result is a
    value of the set (``+0.0`` for a zero) whatever how the values are spread over processes."""
    a, b = _order_key(lo), _order_key(hi)  # invariant: at least k values >= the value of key a
    step = 0
    while a < b:
        mid = (a + b + 1) // 2
        if count_at_least(_key_value(mid), step) >= k:
            a = mid
        else:
            b = mid - 1
        step += 1
    return float(_key_value(a))


def _order_key(v: float) -> int:
    """An integer that orders float32 values as their values (``-0.0`` taken as ``+0.0``)."""
    u = int(np.float32(np.float32(v) + np.float32(0.0)).view(np.uint32))
    return u | 0x80000000 if u < 0x80000000 else ~u & 0xFFFFFFFF


def _key_value(key: int) -> np.float32:
    u = key ^ 0x80000000 if key >= 0x80000000 else ~key & 0xFFFFFFFF
    return np.uint32(u).view(np.float32)


def _finite_range(negatives: np.ndarray, block: int = 1 << 18) -> tuple[float | None, float | None]:
    """The smallest and largest finite value (None, None when there is none)."""
    lo, hi = math.inf, -math.inf
    for s in range(0, len(negatives), block):
        part = negatives[s:s + block]
        part = part[np.isfinite(part)]
        if part.size:
            lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
    return (lo, hi) if lo <= hi else (None, None)


def _count_at_least(negatives: np.ndarray, v: float, block: int = 1 << 18) -> int:
    """How many finite entries are ``>= v``."""
    return sum(int(((part >= v) & (part < np.inf)).sum())
               for part in (negatives[s:s + block] for s in range(0, len(negatives), block)))


def _count_above(negatives: np.ndarray, threshold: float, block: int = 1 << 18) -> np.ndarray:
    """Per row, how many entries are > ``threshold`` (NaN never is), in row blocks (bounded temporaries)."""
    out = np.empty(len(negatives), dtype=np.int64)
    for s in range(0, len(negatives), block):
        out[s:s + block] = (negatives[s:s + block] > threshold).sum(axis=1)
    return out


def instance_fpr(negatives: np.ndarray, threshold: float, num_other: int) -> np.ndarray:
    """Share of each sample's ``num_other`` negatives above ``threshold`` (NaN for invalid rows)."""
    out = np.full(len(negatives), np.nan, dtype=np.float32)
    rows = ~np.isnan(negatives).all(axis=1)
    if num_other <= 0 or not math.isfinite(threshold):
        return out
    out[rows] = _count_above(negatives, threshold)[rows] / num_other
    return out
