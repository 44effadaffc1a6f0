"""The identity-overlap threshold, calibrated on the training set itself.

An evaluation query (an identity's centre, or an image of a set without identities) overlaps a training
class when its cosine to the class centre exceeds a threshold. A query is searched against *every* one of
the C training classes, so the rate that matters is per query: the default threshold is the cosine that
an impostor query (a person in none of the classes) exceeds against **any** of the C classes with
probability at most ``fpr`` (1e-5). By the union bound that holds when the rate per (query, other class)
pair is ``fpr / C``; the pair rate is read off the training set's impostor distribution: the cosines of a
random sample of training images to the centres of the *other* classes (every pair of the sample and
every other class), with

* the **order statistic**, when the sample holds at least :data:`MIN_EXCEEDANCES` pairs above the pair
  rate (``n x fpr / C >= 25``, i.e. about ``samples x fpr >= 25``): the ``(m+1)``-th largest impostor
  cosine with ``m = ceil(n x fpr / C)``, so exactly ``m`` of the ``n`` pairs lie above it;
* a **normal tail fit** otherwise (the default: 1000 samples x 1e-5): a normal distribution matched to the
  impostor distribution's 90% and 99% quantiles (the upper tail, not the bulk), extrapolated to
  ``1 - fpr / C``.

The union bound makes the per-query rate an upper bound (chance matches of one query to several classes
are counted once). As a check the record also gives how many sampled training images exceed the threshold
against any other class (``sample_queries_above``; mislabelled images and look-alikes of the training set
count there). An explicit ``--threshold`` (0.4 = the MegaFace rule on MS1M: a training class whose centre
has cosine above 0.4 with a FaceScrub identity is removed) overrides it. The record of how the value was
obtained is a :class:`fr_data.mining.calibration.Calibration` written to ``overlap.json``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from fr_data.io.errors import ConfigError
from fr_data.mining.calibration import Calibration, fixed

__all__ = ["MIN_EXCEEDANCES", "MIN_PAIRS", "identity_threshold", "impostor_threshold", "upper_quantile"]

KEY = "overlap.identity_cos"
#: impostor pairs above the rate needed to use the order statistic rather than the tail fit
MIN_EXCEEDANCES = 25
#: impostor pairs needed at all (the 99% quantile then rests on at least 10 pairs)
MIN_PAIRS = 1000
TAIL_QUANTILES = (0.9, 0.99)
#: values of one block of the (sample x centres) product (64 MiB of float32)
BLOCK_VALUES = 1 << 24
#: with the tail fit, values below this quantile of the first block are not kept (checked afterwards)
KEEP_FROM = 0.8
SOURCE = ("this project: the training set's own impostor distribution (image vs other-class centre); "
          "per-query rate by the union bound over the C classes")


def identity_threshold(threshold: float | None, x: np.ndarray, own: np.ndarray, db: np.ndarray,
                       active: np.ndarray, fpr: float) -> Calibration:
    """``threshold`` if given (an override), else :func:`impostor_threshold`."""
    if threshold is not None:
        return fixed(KEY, threshold)
    return impostor_threshold(x, own, db, active, fpr)


def impostor_threshold(x: np.ndarray, own: np.ndarray, db: np.ndarray, active: np.ndarray,
                       fpr: float) -> Calibration:
    """The cosine an impostor query exceeds against any of the ``C = len(db)`` classes with probability at
    most ``fpr`` (per-pair rate ``fpr / C``).

    Args:
        x: (S, D) unit rows of sampled training images.
        own: (S,) their class ids (rows of the full centre table).
        db: (C, D) unit centres of the classes ``active`` (class ids), the search database.
        fpr: the rate per evaluation query (against all C classes).

    Raises:
        ConfigError: fewer than :data:`MIN_PAIRS` impostor pairs (too few images or classes): pass
            ``--threshold``.
    """
    classes = len(db)
    n = len(x) * (classes - 1)
    if n < MIN_PAIRS:
        raise ConfigError(f"only {n} impostor pairs (images x other classes) to calibrate the identity threshold "
                          f"(at least {MIN_PAIRS}): pass --threshold (0.4 is the MegaFace rule)")
    pair_rate = fpr / classes
    m = math.ceil(n * pair_rate)
    order = m >= MIN_EXCEEDANCES
    keep = m + 1 if order else n - math.floor((n - 1) * TAIL_QUANTILES[0])
    tail, row_max = _impostor_tail(x, own, db, active, keep)
    common = {"params": {"fpr": fpr, "classes": classes, "pair_rate": pair_rate, "pairs": n},
              "sample_size": n, "source": SOURCE}
    if order:
        value = float(tail.min())  # the (m+1)-th largest
        return _checked(Calibration(
            KEY, value, "impostor_order_statistic",
            f"per query: P(an impostor query exceeds it against any of {classes} classes) <= {fpr:g} by the union "
            f"bound; per pair {pair_rate:.3g}: the {m + 1}-th largest of {n} impostor cosines ({m} lie above it)",
            **common), row_max)
    lo, hi = (upper_quantile(tail, n, q) for q in TAIL_QUANTILES)
    z_lo, z_hi, z = (NormalDist().inv_cdf(q) for q in (*TAIL_QUANTILES, 1.0 - pair_rate))
    sigma = max((hi - lo) / (z_hi - z_lo), 1e-9)
    mu = lo - sigma * z_lo
    value = float(min(mu + sigma * z, 1.0))
    return _checked(Calibration(
        KEY, value, "impostor_normal_tail",
        f"per query: P(an impostor query exceeds it against any of {classes} classes) <= {fpr:g} by the union "
        f"bound; per pair {pair_rate:.3g}: a normal matched to the impostor cosines' {TAIL_QUANTILES[0]:g} and "
        f"{TAIL_QUANTILES[1]:g} quantiles ({lo:.4f}, {hi:.4f}): mean {mu:.4f}, sd {sigma:.4f}, extrapolated to "
        f"1 - {pair_rate:.3g} ({n} pairs: fewer than {MIN_EXCEEDANCES} above the pair rate)", **common), row_max)


def _checked(cal: Calibration, row_max: np.ndarray) -> Calibration:
    """Add the check: sampled training images whose largest other-class cosine exceeds the threshold."""
    cal.params["sample_queries"] = len(row_max)
    cal.params["sample_queries_above"] = int((row_max > cal.value).sum())
    return cal


def upper_quantile(tail: np.ndarray, n: int, q: float) -> float:
    """numpy's default (linear) ``q`` quantile of ``n`` values, from their ``len(tail)`` largest in any
    order (enough of them: the two order statistics it interpolates must be among them)."""
    h = (n - 1) * q
    lo = math.floor(h)
    at = lo - (n - len(tail))  # ascending position within the tail
    if at < 0:
        raise ValueError(f"the {len(tail)} largest of {n} values do not reach the {q:g} quantile")
    upper = min(at + 1, len(tail) - 1)
    part = np.partition(tail, [at, upper])
    below, above = float(part[at]), float(part[upper])
    return below + (h - lo) * (above - below)


def _impostor_tail(x: np.ndarray, own: np.ndarray, db: np.ndarray, active: np.ndarray,
                   keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``keep`` largest impostor cosines (in no order) and each sampled row's largest, block by block.

    Between blocks only values at or above a floor are kept: the first block's quantile that leaves twice
    the share ``keep / n`` (estimated on every 16th value; the tail fit keeps ~20% of the pairs, not all
    of them; the order statistic a few dozen). When fewer than ``keep`` values lie above the floor in all,
    every block is searched again without one (so the answer is always exact); the running list is cut to
    its ``keep`` largest whenever it holds twice that.
    """
    position = np.full(int(active.max()) + 1 if len(active) else 0, -1, dtype=np.int64)
    position[active] = np.arange(len(active))
    rows = max(1, BLOCK_VALUES // max(len(db), 1))
    share = 1.0 - min(1.0, 2.0 * keep / (len(x) * (len(db) - 1)))
    row_max = np.empty(len(x), dtype=np.float32)
    for use_floor in (True, False):
        floor = None
        found: list[np.ndarray] = []
        for s in range(0, len(x), rows):
            sims = np.asarray(x[s:s + rows], dtype=np.float32) @ db.T
            mine = own[s:s + rows]
            cols = np.where(mine < len(position), position[np.minimum(mine, len(position) - 1)], -1)
            sims[np.flatnonzero(cols >= 0), cols[cols >= 0]] = -np.inf  # the own class is no impostor
            row_max[s:s + len(sims)] = sims.max(axis=1)
            flat = sims[sims > -np.inf]
            if use_floor:
                floor = float(np.quantile(flat[::16], share)) if floor is None else floor
                flat = flat[flat >= floor]
            found.append(flat)
            if sum(map(len, found)) > 2 * keep:
                merged = np.concatenate(found)
                found = [np.partition(merged, len(merged) - keep)[-keep:]]
        best = np.concatenate(found)
        if len(best) >= keep:
            return np.partition(best, len(best) - keep)[-keep:], row_max
    raise AssertionError("unreachable: without a floor every impostor cosine is kept")
