"""The identity-overlap threshold, calibrated on the training set itself.

An evaluation image "belongs" to a training class when its cosine to the class centre exceeds a threshold.
The threshold is read off the training set's impostor distribution: the cosines of training images to the
centres of the *other* classes (every pair of a random sample of images and every other class). The
default is the cosine such an impostor pair exceeds with probability ``fpr`` (1e-5):

* **order statistic**, when the sample holds at least :data:`MIN_EXCEEDANCES` pairs above that rate
  (``n x fpr >= 25``): the ``(m+1)``-th largest impostor cosine with ``m = ceil(n x fpr)``, so exactly
  ``m`` of the ``n`` pairs lie above it;
* **normal tail fit**, with fewer pairs: a normal distribution matched to the impostor distribution's 90%
  and 99% quantiles (the upper tail, not the bulk), extrapolated to ``1 - fpr``.

An explicit ``--threshold`` (0.4 = the MegaFace rule on MS1M: a training class whose centre has cosine
above 0.4 with a FaceScrub identity is removed) overrides it. The record of how the value was obtained is a
:class:`fr_data.mining.calibration.Calibration` written to ``overlap.json``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from fr_data.io.errors import ConfigError
from fr_data.mining.calibration import Calibration, fixed

__all__ = ["MIN_EXCEEDANCES", "MIN_PAIRS", "identity_threshold", "impostor_threshold"]

KEY = "overlap.identity_cos"
#: impostor pairs above the rate needed to use the order statistic rather than the tail fit
MIN_EXCEEDANCES = 25
#: impostor pairs needed at all (the 99% quantile then rests on at least 10 pairs)
MIN_PAIRS = 1000
TAIL_QUANTILES = (0.9, 0.99)
#: values of one block of the (sample x centres) product (64 MiB of float32)
BLOCK_VALUES = 1 << 24


def identity_threshold(threshold: float | None, x: np.ndarray, own: np.ndarray, db: np.ndarray,
                       active: np.ndarray, fpr: float) -> Calibration:
    """``threshold`` if given (an override), else :func:`impostor_threshold`."""
    if threshold is not None:
        return fixed(KEY, threshold)
    return impostor_threshold(x, own, db, active, fpr)


def impostor_threshold(x: np.ndarray, own: np.ndarray, db: np.ndarray, active: np.ndarray,
                       fpr: float) -> Calibration:
    """The cosine an image exceeds against another class's centre with probability ``fpr``.

    Args:
        x: (S, D) unit rows of sampled training images.
        own: (S,) their class ids (rows of the full centre table).
        db: (C, D) unit centres of the classes ``active`` (class ids), the search database.
        fpr: the rate per (image, other class) pair.

    Raises:
        ConfigError: fewer than :data:`MIN_PAIRS` impostor pairs (too few images or classes): pass
            ``--threshold``.
    """
    n = len(x) * (len(db) - 1)
    if n < MIN_PAIRS:
        raise ConfigError(f"only {n} impostor pairs (images x other classes) to calibrate the identity threshold "
                          f"(at least {MIN_PAIRS}): pass --threshold (0.4 is the MegaFace rule)")
    m = math.ceil(n * fpr)
    order = m >= MIN_EXCEEDANCES
    values = _impostor_values(x, own, db, active, m + 1 if order else None)
    common = {"params": {"fpr": fpr, "pairs": n}, "sample_size": n,
              "source": "this project: the training set's own impostor distribution (image vs other-class centre)"}
    if order:
        value = float(np.sort(values)[::-1][m])
        return Calibration(KEY, value, "impostor_order_statistic",
                           f"the {m + 1}-th largest of {n} impostor cosines ({m} lie above it)", **common)
    lo, hi = (float(np.quantile(values, q)) for q in TAIL_QUANTILES)
    z_lo, z_hi, z = (NormalDist().inv_cdf(q) for q in (*TAIL_QUANTILES, 1.0 - fpr))
    sigma = max((hi - lo) / (z_hi - z_lo), 1e-9)
    mu = lo - sigma * z_lo
    value = float(min(mu + sigma * z, 1.0))
    return Calibration(KEY, value, "impostor_normal_tail",
                       f"normal matched to the impostor cosines' {TAIL_QUANTILES[0]:g} and {TAIL_QUANTILES[1]:g} "
                       f"quantiles ({lo:.4f}, {hi:.4f}): mean {mu:.4f}, sd {sigma:.4f}, extrapolated to "
                       f"1 - {fpr:g} ({n} pairs: fewer than {MIN_EXCEEDANCES} above the rate)",
                       values=values, **common)


def _impostor_values(x: np.ndarray, own: np.ndarray, db: np.ndarray, active: np.ndarray,
                     keep: int | None) -> np.ndarray:
    """Every impostor cosine (``keep`` None) or only the ``keep`` largest, block by block."""
    position = np.full(int(active.max()) + 1 if len(active) else 0, -1, dtype=np.int64)
    position[active] = np.arange(len(active))
    rows = max(1, BLOCK_VALUES // max(len(db), 1))
    found: list[np.ndarray] = []
    best = np.empty(0, dtype=np.float32)
    for s in range(0, len(x), rows):
        sims = np.asarray(x[s:s + rows], dtype=np.float32) @ db.T
        mine = own[s:s + rows]
        has = (mine < len(position))
        cols = np.where(has, position[np.minimum(mine, len(position) - 1)], -1)
        sims[np.flatnonzero(cols >= 0), cols[cols >= 0]] = np.nan
        flat = sims[~np.isnan(sims)]
        if keep is None:
            found.append(flat)
            continue
        merged = np.concatenate([best, flat])
        best = merged if len(merged) <= keep else np.partition(merged, len(merged) - keep)[-keep:]
    return np.concatenate(found) if keep is None else best
