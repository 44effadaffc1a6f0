"""Bootstrap intervals over the pairs of a verification pack, for one arm and for gains between arms.

A bootstrap replicate resamples the pack's pairs with replacement, i.e. gives every pair a count (a
multinomial draw; :func:`draw_counts`). The same counts are applied to every model scored on the pack,
so the mean over seeds and the difference between two arms are computed replicate by replicate (a
paired bootstrap: the pairs both arms saw are the same). TPR at a target FPR of a weighted pair set is
computed exactly as :func:`fr_train.evaluation.verification.tpr_at_fpr` computes it on the resampled list (the
threshold is the (k+1)-th highest impostor score counting repeats, k = floor(FPR * impostors)), vectorised
over replicates (:func:`bootstrap_tpr`). Intervals are percentile intervals.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["draw_counts", "pack_seed", "bootstrap_tpr", "percentile_interval", "Estimate", "Draws",
           "tpr_draws"]

#: As in fr_train.evaluation.verification.tpr_at_fpr: a target FPR times the impostor count is rounded down
#: after this relative nudge, so that 0.01 * 4000 allows 40 false accepts, not 39.
FLOOR_NUDGE = 1 + 1e-12


def pack_seed(seed: int, pack: str) -> list[int]:
    """The bootstrap seed of a pack: the experiment's seed and a stable number of the pack's name."""
    return [seed, zlib.crc32(pack.encode())]


def draw_counts(num_pairs: int, replicates: int, seed: int | Sequence[int]) -> np.ndarray:
    """``(replicates, num_pairs)`` counts: how often each pair is drawn in each resample of the pack."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_pairs, np.full(num_pairs, 1.0 / num_pairs), size=replicates)


def bootstrap_tpr(scores: np.ndarray, issame: np.ndarray, fpr: float, counts: np.ndarray) -> np.ndarray:
    """TPR at ``fpr`` of every resample (row of ``counts``); NaN where a resample has no genuine pair or
    too few impostor pairs for the FPR (FPR * impostors < 1)."""
    scores, issame = np.asarray(scores, np.float64), np.asarray(issame, bool)
    counts = np.atleast_2d(counts)
    neg_order = np.flatnonzero(~issame)[np.argsort(-scores[~issame], kind="stable")]
    pos_order = np.flatnonzero(issame)[np.argsort(scores[issame], kind="stable")]
    neg_cum = np.cumsum(counts[:, neg_order], axis=1)
    pos_cum = np.cumsum(counts[:, pos_order], axis=1)
    num_neg = neg_cum[:, -1] if len(neg_order) else np.zeros(len(counts), np.int64)
    num_pos = pos_cum[:, -1] if len(pos_order) else np.zeros(len(counts), np.int64)
    allowed = np.floor(fpr * num_neg * FLOOR_NUDGE).astype(np.int64)
    slot = (neg_cum <= allowed[:, None]).sum(axis=1)  # first sorted impostor whose running count > k
    neg_sorted = np.append(scores[neg_order], -np.inf)
    threshold = neg_sorted[slot]
    below = np.searchsorted(scores[pos_order], threshold, side="right")
    rejected = np.where(below > 0, np.take_along_axis(pos_cum, np.maximum(below - 1, 0)[:, None], 1)[:, 0], 0) \
        if len(pos_order) else np.zeros(len(counts), np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = (num_pos - rejected) / num_pos
    return np.where((allowed >= 1) & (num_pos > 0), tpr, np.nan)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of the finite ``values`` (NaN, NaN when there are none)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval and the spread of the per-seed values."""

    value: float
    low: float
    high: float
    seed_min: float
    seed_max: float
    seeds: int


@dataclass(frozen=True)
class Draws:
    """One quantity (e.g. TPR of an arm on a pack, or a gain): its value per seed and the bootstrap
    replicates of its mean over seeds. Differences and averages are taken seed by seed and replicate
    by replicate, which keeps every comparison paired."""

    points: np.ndarray  # (S,) value per seed
    boots: np.ndarray  # (B,) mean over seeds in each resample

    def __sub__(self, other: Draws) -> Draws:
        if len(self.points) != len(other.points):
            raise ValueError(f"paired difference needs the same seeds: {len(self.points)} vs {len(other.points)}")
        return Draws(self.points - other.points, self.boots - other.boots)

    @staticmethod
    def mean(parts: Sequence[Draws]) -> Draws:
        """The average of several quantities (e.g. over packs), seed by seed and replicate by replicate."""
        return Draws(np.mean([p.points for p in parts], axis=0), np.mean([p.boots for p in parts], axis=0))

    def estimate(self, level: float = 0.95) -> Estimate:
        """Mean over seeds, percentile interval, min and max over seeds."""
        low, high = percentile_interval(self.boots, level)
        return Estimate(float(self.points.mean()), low, high, float(self.points.min()),
                        float(self.points.max()), len(self.points))


def tpr_draws(scores: Sequence[np.ndarray], issame: np.ndarray, fpr: float, counts: np.ndarray) -> Draws:
    """TPR at ``fpr`` of each seed's scores on one pack, and of their mean in every resample ``counts``
    (the same resample for every seed)."""
    whole = np.ones((1, len(issame)), np.int64)
    points = np.array([bootstrap_tpr(s, issame, fpr, whole)[0] for s in scores])
    boots = np.mean([bootstrap_tpr(s, issame, fpr, counts) for s in scores], axis=0)
    return Draws(points, boots)
