"""The identity threshold calibrated on the training set's impostor distribution."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from fr_data.io.errors import ConfigError
from fr_data.overlap import threshold as th


def _setup(samples: int, classes: int, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    db = rng.standard_normal((classes, dim)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    x = rng.standard_normal((samples, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    own = rng.integers(0, classes, samples)
    return x, own, db, np.arange(classes)


def _impostors(x, own, db):
    sims = (x @ db.T).astype(np.float32)
    mask = np.ones_like(sims, dtype=bool)
    mask[np.arange(len(x)), own] = False
    return np.sort(sims[mask])[::-1]


def test_order_statistic_leaves_m_pairs_above(monkeypatch):
    monkeypatch.setattr(th, "BLOCK_VALUES", 64)  # several blocks: the running top-m merge is exercised
    x, own, db, active = _setup(300, 40)
    n = 300 * 39
    cal = th.impostor_threshold(x, own, db, active, 0.01)
    m = int(np.ceil(n * 0.01))
    assert cal.method == "impostor_order_statistic"
    values = _impostors(x, own, db)
    assert cal.value == pytest.approx(float(values[m]), abs=1e-6)
    assert (values > cal.value).sum() == m


def test_normal_tail_fit_from_the_upper_quantiles():
    x, own, db, active = _setup(60, 40)
    cal = th.impostor_threshold(x, own, db, active, 1e-5)
    values = _impostors(x, own, db)
    lo, hi = np.quantile(values, 0.9), np.quantile(values, 0.99)
    sigma = (hi - lo) / (NormalDist().inv_cdf(0.99) - NormalDist().inv_cdf(0.9))
    want = lo - sigma * NormalDist().inv_cdf(0.9) + sigma * NormalDist().inv_cdf(1 - 1e-5)
    assert cal.method == "impostor_normal_tail"
    assert cal.value == pytest.approx(want, abs=1e-5)
    assert cal.value > values[0]  # beyond every measured impostor: an extrapolation


def test_override_and_too_few_pairs():
    x, own, db, active = _setup(10, 5)
    assert th.identity_threshold(0.4, x, own, db, active, 1e-5).method == "override"
    with pytest.raises(ConfigError, match="--threshold"):
        th.identity_threshold(None, x, own, db, active, 1e-5)
