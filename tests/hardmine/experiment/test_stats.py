"""Bootstrap intervals: the vectorised weighted TPR against fr_train.evaluation.verification.tpr_at_fpr on
resampled lists, and the bootstrap distribution against the exact one (every resample of a tiny pack
enumerated)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fr_train.evaluation.verification import tpr_at_fpr
from hardmine.experiment.stats import Draws, bootstrap_tpr, draw_counts, percentile_interval, tpr_draws

# 5 pairs: genuine 0.9, 0.4, 0.6; impostor 0.5, 0.3 (a tie with nothing; hand-checkable)
SCORES = np.array([0.9, 0.5, 0.4, 0.3, 0.6])
ISSAME = np.array([True, False, True, False, True])


def reference_tpr(indices: tuple[int, ...], scores: np.ndarray, fpr: float) -> float:
    """tpr_at_fpr on the resampled list itself (NaN where a side is empty or the FPR unreachable)."""
    sel = np.asarray(indices)
    same = ISSAME[sel]
    if same.all() or not same.any():
        return np.nan
    return float(tpr_at_fpr(scores[sel], same, [fpr]).tprs[0])


def every_resample(n: int) -> tuple[list[tuple[int, ...]], np.ndarray]:
    draws = list(itertools.product(range(n), repeat=n))
    counts = np.stack([np.bincount(d, minlength=n) for d in draws])
    return draws, counts


def test_whole_pack_matches_tpr_at_fpr():
    whole = np.ones((1, 5), np.int64)
    # impostors 0.5, 0.3: at FPR 0.5 one false accept is allowed, threshold 0.3 -> genuine all above: 1.0
    assert bootstrap_tpr(SCORES, ISSAME, 0.5, whole)[0] == 1.0
    # FPR 0.4: 0.4 * 2 < 1, unreachable
    assert np.isnan(bootstrap_tpr(SCORES, ISSAME, 0.4, whole)[0])
    rng = np.random.default_rng(0)
    scores, issame = rng.normal(size=300), rng.random(300) < 0.5
    for fpr in (0.01, 0.1, 0.5):
        expected = tpr_at_fpr(scores, issame, [fpr]).tprs[0]
        assert bootstrap_tpr(scores, issame, fpr, np.ones((1, 300), np.int64))[0] == expected


@pytest.mark.parametrize("fpr", [0.5, 0.34, 1.0])
def test_every_resample_equals_the_brute_force_value(fpr):
    draws, counts = every_resample(5)
    fast = bootstrap_tpr(SCORES, ISSAME, fpr, counts)
    slow = np.array([reference_tpr(d, SCORES, fpr) for d in draws])
    assert np.array_equal(np.isnan(fast), np.isnan(slow))
    assert np.array_equal(fast[~np.isnan(fast)], slow[~np.isnan(slow)])


def test_monte_carlo_interval_converges_to_the_exact_bootstrap():
    draws, counts = every_resample(5)
    exact = bootstrap_tpr(SCORES, ISSAME, 0.5, counts)  # all 3125 equally likely resamples
    sampled = bootstrap_tpr(SCORES, ISSAME, 0.5, draw_counts(5, 40000, seed=1))
    exact, sampled = exact[np.isfinite(exact)], sampled[np.isfinite(sampled)]
    for value in np.unique(exact):  # the two distributions agree value by value
        assert np.mean(sampled <= value) == pytest.approx(np.mean(exact <= value), abs=0.01)
    assert percentile_interval(sampled, 0.8) == pytest.approx(percentile_interval(exact, 0.8), abs=0.02)


def test_draw_counts_resample_every_pair_count_once_per_pair():
    counts = draw_counts(7, 50, seed=[3, 4])
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all()
    assert np.array_equal(counts, draw_counts(7, 50, seed=[3, 4]))


def test_seed_means_and_gains_use_the_same_resamples():
    rng = np.random.default_rng(5)
    issame = rng.random(400) < 0.5
    base = [rng.normal(size=400) + issame for _ in range(3)]
    better = [s + 0.5 * issame for s in base]
    counts = draw_counts(400, 200, seed=0)
    a, b = tpr_draws(better, issame, 0.1, counts), tpr_draws(base, issame, 0.1, counts)
    assert np.array_equal(a.points, [bootstrap_tpr(s, issame, 0.1, np.ones((1, 400), int))[0] for s in better])
    assert a.boots[7] == np.mean([bootstrap_tpr(s, issame, 0.1, counts[7:8])[0] for s in better])
    gain, ea, eb = (a - b).estimate(), a.estimate(), b.estimate()
    assert gain.value == pytest.approx(ea.value - eb.value)
    assert ea.low <= ea.value <= ea.high and ea.seed_min <= ea.value <= ea.seed_max and ea.seeds == 3
    assert 0 < gain.low <= gain.value <= gain.high  # a uniform shift of genuine scores: always a gain
    # pairing removes the pack's own sampling noise: the gain interval is narrower than either arm's
    assert gain.high - gain.low < min(ea.high - ea.low, eb.high - eb.low)
    both = Draws.mean([a, b])
    assert both.estimate().value == pytest.approx((ea.value + eb.value) / 2)
    assert np.array_equal(both.boots, (a.boots + b.boots) / 2)
    with pytest.raises(ValueError, match="same seeds"):
        tpr_draws(better[:2], issame, 0.1, counts) - b
