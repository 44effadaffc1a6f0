"""The identity threshold calibrated on the training set's impostor distribution: a false-match rate per
evaluation query against all C classes (per-pair rate fpr / C)."""

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


def test_order_statistic_leaves_m_pairs_above_at_the_pair_rate_fpr_over_c(monkeypatch):
    monkeypatch.setattr(th, "BLOCK_VALUES", 64)  # several blocks: the floor and the running cut are exercised
    x, own, db, active = _setup(300, 40)
    n = 300 * 39
    cal = th.impostor_threshold(x, own, db, active, 0.4)  # per query 0.4 = per pair 0.01 against 40 classes
    m = int(np.ceil(n * 0.4 / 40))
    assert m == 117 and cal.params["pair_rate"] == pytest.approx(0.01)
    assert cal.method == "impostor_order_statistic"
    values = _impostors(x, own, db)
    assert cal.value == pytest.approx(float(values[m]), abs=1e-6)
    assert (values > cal.value).sum() == m


def test_normal_tail_fit_from_the_upper_quantiles_at_the_pair_rate():
    x, own, db, active = _setup(60, 40, dim=64)
    cal = th.impostor_threshold(x, own, db, active, 1e-5)
    values = _impostors(x, own, db)
    lo, hi = np.quantile(values, 0.9), np.quantile(values, 0.99)
    sigma = (hi - lo) / (NormalDist().inv_cdf(0.99) - NormalDist().inv_cdf(0.9))
    want = lo - sigma * NormalDist().inv_cdf(0.9) + sigma * NormalDist().inv_cdf(1 - 1e-5 / 40)
    assert cal.method == "impostor_normal_tail"
    assert cal.value == pytest.approx(want, abs=1e-5)
    assert cal.value > values[0]  # beyond every measured impostor: an extrapolation
    row_max = np.where(np.eye(40, dtype=bool)[own], -np.inf, x @ db.T).max(axis=1)
    assert cal.params["sample_queries"] == 60
    assert cal.params["sample_queries_above"] == int((row_max > cal.value).sum()) == 0


@pytest.mark.parametrize("block_values", [64, 1 << 24])
@pytest.mark.parametrize("keep", [1, 5, 200, 2000])
def test_impostor_tail_is_the_exact_top_whatever_the_floor(monkeypatch, block_values, keep):
    """The floor read off the first block may keep too few values (atypical first rows, tiny blocks):
    the answer is still the top ``keep`` of all impostor cosines."""
    monkeypatch.setattr(th, "BLOCK_VALUES", block_values)
    x, own, db, active = _setup(80, 30, seed=2)
    order = np.argsort(x[:, 0])  # the first rows are the least typical: their floor is too high or too low
    tail, row_max = th._impostor_tail(x[order], own[order], db, active, keep)
    want = _impostors(x[order], own[order], db)[:keep]
    np.testing.assert_allclose(np.sort(tail)[::-1], want, atol=1e-6)  # BLAS blocks round the last bit apart
    np.testing.assert_allclose(row_max, np.where(np.eye(30, dtype=bool)[own[order]], -np.inf,
                                                 x[order] @ db.T).max(axis=1), atol=1e-6)


def test_upper_quantile_is_numpys_linear_quantile():
    values = np.random.default_rng(4).standard_normal(1001).astype(np.float32)
    tail = np.random.default_rng(5).permutation(np.sort(values)[-101:])  # the 101 largest, in any order
    for q in (0.9, 0.95, 0.99, 0.999, 1.0):
        assert th.upper_quantile(tail, 1001, q) == pytest.approx(float(np.quantile(values, q)), abs=1e-6)
    with pytest.raises(ValueError, match="0.89"):
        th.upper_quantile(tail, 1001, 0.89)


def test_override_and_too_few_pairs():
    x, own, db, active = _setup(10, 5)
    assert th.identity_threshold(0.4, x, own, db, active, 1e-5).method == "override"
    with pytest.raises(ConfigError, match="--threshold"):
        th.identity_threshold(None, x, own, db, active, 1e-5)
