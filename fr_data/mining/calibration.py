"""Decision thresholds calibrated from the run's own similarity distributions.

An absolute cosine (merge at 0.5, duplicate at 0.95) belongs to the backbone it was read off: a small or
briefly trained backbone crowds every cosine towards 1, a well-trained one keeps classes tight. So by
default (``auto`` in the config) each threshold is a stated quantile or ratio of a distribution measured in
this run, and an explicit number in the config overrides it. Every calibrator returns the value and a
:class:`Calibration` record of how it was obtained (method, statistic, quantile or ratio, sample size),
which the run writes to ``run.json`` under ``calibration``.

* **duplicates** (:func:`duplicate_cos`): cleanlab's near-duplicate rule, relative to the typical
  nearest-neighbour distance: a pair is a near duplicate when its cosine distance is below ``ratio`` (0.13)
  times the median over samples of the distance to the nearest neighbour
  (``cleanlab/datalab/internal/issue_manager/duplicate.py``, https://github.com/cleanlab/cleanlab).
* **merges** (:func:`merge_cos`): the genuine distribution of "one person under two labels", made from the
  run itself: every class with at least four samples is split into two random halves (:class:`SplitHalves`)
  and the cosine of the two half-centres is recorded; the threshold is its ``quantile`` (a low one: that
  share of such split identities would be missed by the centre-cosine rule alone).
* **mislabels** (:func:`margin_max`): the centre margin (own leave-one-out centre cosine minus nearest
  other centre cosine) of a suspect must be below ``-ratio`` times the gap between the run's genuine and
  impostor sample-to-centre cosines: the median leave-one-out own-centre cosine of the samples whose own
  label wins their k-NN vote, minus the mean cosine of a sample to the centre of another class
  (:func:`impostor_mean_cos`, exact from the class sums). A mislabelled sample sits about that gap nearer
  its true class than the label's class (its label's centre is an impostor's, its nearest centre a
  genuine one), so the threshold asks for a stated share of the gap, whatever the backbone's cosine scale
  (the gap is 0.09 for a crowded backbone whose cosines all sit near 1, 0.7-0.9 for a spread one). The
  typical margin of a correctly labelled sample (the previous scale) does not track it: it is set by the
  nearest look-alike class, not by where a wrong label's centre lies.
"""

from __future__ import annotations

import dataclasses
from dataclasses import InitVar, asdict, dataclass, field
from typing import Any

import numpy as np

from fr_data.mining.config import AUTO, MiningConfig

__all__ = ["Calibration", "SplitHalves", "calibrate", "duplicate_cos", "fixed", "impostor_mean_cos", "margin_max",
           "merge_cos", "HISTOGRAM_BINS"]

#: Bins of the histogram a :class:`Calibration` keeps of its distribution (the figure's bars).
HISTOGRAM_BINS = 60


@dataclass
class Calibration:
    """How one threshold was obtained.

    Attributes:
        key: the config key it stands for (``duplicates.cos``, ...).
        value: the threshold in force (None: rule off).
        method: ``override`` (the config's number), ``off``, or the calibration rule's name.
        statistic: what was measured (empty for an override).
        params: the stated rate: quantile, ratio, cap.
        sample_size: how many values the statistic was computed from (0 for an override).
        source: where the rule comes from.
        values: the distribution itself, given at construction only and kept as ``histogram``: the record
            of a run of millions of rows holds 60 counts, not a value per row.
        histogram: ``(counts, edges)`` of ``values`` in :data:`HISTOGRAM_BINS` equal bins (``np.histogram``),
            what the figure draws (None without values; not written to run.json).
    """

    key: str
    value: float | None
    method: str
    statistic: str = ""
    params: dict[str, float] = field(default_factory=dict)
    sample_size: int = 0
    source: str = ""
    values: InitVar[np.ndarray | None] = None
    histogram: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self, values: np.ndarray | None) -> None:
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            self.histogram = np.histogram(values, bins=HISTOGRAM_BINS) if len(values) else None

    def record(self) -> dict[str, Any]:
        """The JSON record (without the distribution)."""
        out = asdict(dataclasses.replace(self, histogram=None))
        out.pop("histogram")
        return out


def fixed(key: str, value: float | None) -> Calibration:
    """An explicit config value (or None: the rule is off)."""
    return Calibration(key, None if value is None else float(value), "off" if value is None else "override")


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[np.isfinite(x)]


def duplicate_cos(top1_sims: np.ndarray, ratio: float) -> Calibration:
    """``1 - ratio * median(1 - cos to the nearest neighbour)`` over samples with a neighbour."""
    sims = _finite(top1_sims)
    if len(sims) == 0:
        return Calibration("duplicates.cos", None, "nn_distance_ratio", "no sample has a neighbour",
                           {"ratio": ratio})
    dist = 1.0 - sims
    median = float(np.median(dist))
    value = float(1.0 - ratio * max(median, np.finfo(np.float32).eps))
    return Calibration("duplicates.cos", value, "nn_distance_ratio",
                       f"median cosine distance to the nearest neighbour = {median:.6g}",
                       {"ratio": ratio, "median_nn_distance": median}, len(dist),
                       "cleanlab near-duplicate rule (distance < 0.13 x median NN distance)", dist)


class SplitHalves:
    """ClassVisitor: cosine between the centres of two random halves of every class with >= 4 samples.

    The halves of class c come from ``default_rng([seed, c])``, so the result does not depend on the order
    the classes are visited in. NaN for smaller classes.
    """

    def __init__(self, num_classes: int, seed: int):
        self.cos = np.full(num_classes, np.nan, dtype=np.float64)
        self.seed = seed

    def visit(self, c: int, rows: np.ndarray, x: np.ndarray, gram: np.ndarray) -> None:
        n = len(rows)
        if n < 4:
            return
        perm = np.random.default_rng([self.seed, c]).permutation(n)
        a, b = perm[:n // 2], perm[n // 2:]
        g = gram.astype(np.float64)
        ab, aa, bb = g[np.ix_(a, b)].sum(), g[np.ix_(a, a)].sum(), g[np.ix_(b, b)].sum()
        if aa > 0 and bb > 0:
            self.cos[c] = float(np.clip(ab / np.sqrt(aa * bb), -1.0, 1.0))


def merge_cos(split_half_cos: np.ndarray, quantile: float) -> Calibration:
    """The ``quantile`` of the split-half centre cosines (None when no class has four samples)."""
    vals = _finite(split_half_cos)
    if len(vals) == 0:
        return Calibration("classes.merge_cos", None, "split_half_quantile",
                           "no class has 4 or more valid samples: centre-cosine rule off", {"quantile": quantile})
    value = float(np.quantile(vals, quantile))
    return Calibration("classes.merge_cos", value, "split_half_quantile",
                       "cosine between the centres of two random halves of each class",
                       {"quantile": quantile}, len(vals),
                       "this project: the run's own genuine 'one person, two labels' distribution", vals)


def impostor_mean_cos(sums: np.ndarray, counts: np.ndarray, active: np.ndarray) -> float:
    """Mean cosine of a valid sample to the unit centre of another class, over every (sample, other class)
    pair, exactly from the class sums: ``((sum_c s_c) . (sum_c u_c) - sum_c |s_c|) / (N (C - 1))`` over
    the active classes (``s_c`` the sum of class c's unit vectors, ``u_c`` its unit centre; ``s_c . u_c =
    |s_c|``). NaN with fewer than two active classes."""
    if len(active) < 2:
        return float("nan")
    s = np.asarray(sums, dtype=np.float64)[active]
    norms = np.linalg.norm(s, axis=1)
    unit = s / norms[:, None]
    pairs = float(np.asarray(counts)[active].sum()) * (len(active) - 1)
    return float((s.sum(axis=0) @ unit.sum(axis=0) - norms.sum()) / pairs)


def margin_max(center_cos: np.ndarray, own_wins: np.ndarray, impostor_mean: float, ratio: float,
               margin: np.ndarray | None = None) -> Calibration:
    """``-ratio x (median own-centre cosine of the samples whose own label wins the k-NN vote - the mean
    impostor sample-to-centre cosine)``; 0 when no sample's own label wins or the gap is not positive.

    ``margin`` (optional, every sample's centre margin) is kept as the distribution the figure draws the
    threshold on."""
    genuine = _finite(np.asarray(center_cos)[np.asarray(own_wins, dtype=bool)])
    params = {"ratio": ratio, "impostor_mean_cos": impostor_mean}
    if len(genuine) == 0 or not np.isfinite(impostor_mean):
        return Calibration("noise.margin_max", 0.0, "genuine_impostor_gap",
                           "no sample's own label wins its vote, or one class: 0 is used", params)
    median = float(np.median(genuine))
    gap = median - impostor_mean
    return Calibration("noise.margin_max", -ratio * max(gap, 0.0), "genuine_impostor_gap",
                       f"median own-centre cosine of samples whose own label wins the k-NN vote = {median:.6g}"
                       f", mean sample-to-other-centre cosine = {impostor_mean:.6g}, gap = {gap:.6g}",
                       {**params, "genuine_median_cos": median, "gap": gap}, len(genuine),
                       "this project: a share of the run's genuine vs impostor sample-to-centre cosine gap",
                       None if margin is None else _finite(margin))


def calibrate(cfg: MiningConfig, top1_sims: np.ndarray, split_half_cos: np.ndarray, margin: np.ndarray,
              own_wins: np.ndarray, center_cos: np.ndarray, impostor_mean: float) -> dict[str, Calibration]:
    """Every decision threshold: calibrated where the config says ``auto``, else the config's value.

    Args:
        top1_sims: each sample's cosine to its nearest neighbour (NaN / -inf where none).
        split_half_cos: per class, the cosine between the centres of two random halves (NaN if < 4 samples).
        margin: per sample, leave-one-out own-centre cosine minus nearest other-centre cosine.
        own_wins: per sample, whether its own label wins its k-NN vote (valid samples only).
        center_cos: per sample, the leave-one-out own-centre cosine.
        impostor_mean: the mean sample-to-other-centre cosine (:func:`impostor_mean_cos`).
    """
    c = cfg.calibration
    out = {
        "duplicates.cos": duplicate_cos(top1_sims, c.duplicate_nn_ratio) if cfg.duplicates.cos == AUTO
        else fixed("duplicates.cos", cfg.duplicates.cos),
        "classes.merge_cos": merge_cos(split_half_cos, c.merge_split_quantile) if cfg.classes.merge_cos == AUTO
        else fixed("classes.merge_cos", cfg.classes.merge_cos),
        "noise.margin_max": margin_max(center_cos, own_wins, impostor_mean, c.margin_ratio, margin)
        if cfg.noise.margin_max == AUTO else fixed("noise.margin_max", cfg.noise.margin_max),
    }
    if out["duplicates.cos"].value is None:  # no neighbours at all: nothing can be a duplicate
        out["duplicates.cos"].value = 1.0
    return out
