"""SDD-FIQA, CR-FIQA and instance FPR against independent references (scipy, brute force)."""

import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from fr_data.mining.quality import (
    SddCollector,
    certainty_ratio,
    cyclic_windows,
    instance_fpr,
    inverse_permutations,
    kth_largest,
    sdd_scores,
    unified_threshold,
    wasserstein_equal,
)


def test_wasserstein_equal_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.6, 0.1, (5, 24)), rng.normal(0.1, 0.2, (5, 24))
    got = wasserstein_equal(a, b)
    for i in range(5):
        assert got[i] == pytest.approx(wasserstein_distance(a[i], b[i]), abs=1e-12)


def test_cyclic_windows_are_distinct_and_exclude_self():
    rng = np.random.default_rng(1)
    w = cyclic_windows(rng, rounds=3, n_rows=7, pool=7, p=6, exclude_self=True)
    for r in range(3):
        for i in range(7):
            assert sorted(w[r, i].tolist()) == [j for j in range(7) if j != i]
    w = cyclic_windows(rng, rounds=2, n_rows=4, pool=10, p=5, exclude_self=False)
    assert all(len(set(w[r, i].tolist())) == 5 for r in range(2) for i in range(4))


def test_cyclic_windows_are_uniform_subsets():
    rng = np.random.default_rng(2)
    w = cyclic_windows(rng, rounds=4000, n_rows=1, pool=5, p=2, exclude_self=True)
    counts = np.bincount(w.reshape(-1), minlength=5) / w.size
    assert counts[0] == 0
    np.testing.assert_allclose(counts[1:], 0.25, atol=0.02)


def test_sdd_collector_equals_scipy_on_full_sets():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ref = rng.standard_normal((3, 6))
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    ref_class = np.array([1, 0, 2])  # the reference row of class 0 must never be a negative
    col = SddCollector(n=10, ref_x=ref, ref_class=ref_class, samples=2, rounds=2, seed=0)
    rows = np.array([2, 3, 5, 7])
    col.visit(0, rows, x, x @ x.T)
    assert np.isnan(col.raw[[0, 1, 4, 6, 8, 9]]).all()
    for r in range(2):
        for i in range(4):
            pos = [x[i] @ x[j] for j in range(4) if j != i]
            neg = [x[i] @ ref[0], x[i] @ ref[2]]
            # with p = 2 of 3 positives the draw is random; it must be W1 of *some* 2-subset
            cands = [wasserstein_distance([pos[a], pos[b]], neg) for a in range(3) for b in range(a + 1, 3)]
            assert min(abs(col.raw[rows[i], r] - c) for c in cands) < 1e-6


def _w1_by_cdf(a, b) -> float:
    """1-D Wasserstein-1 distance of two empirical distributions as the integral of |F_a - F_b|."""
    grid = np.sort(np.concatenate([a, b]))
    f_a = np.searchsorted(np.sort(a), grid[:-1], side="right") / len(a)
    f_b = np.searchsorted(np.sort(b), grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(f_a - f_b) * np.diff(grid)))


def test_quality_sdd_restates_the_papers_definition():
    """SDD-FIQA (Ou et al., CVPR 2021): the pseudo-label of x is the Wasserstein distance between its
    intra-class similarities S_P (to its class mates) and inter-class similarities S_N (to samples of
    other classes), averaged over the sampling rounds, normalised to [0, 100] over the data set. With
    3 classes x 3 samples and a reference set of one sample per class, every round draws all 2 positives
    and both negatives, so the paper's quantity is exact and needs no sampling."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((9, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ref = np.array([0, 3, 6])
    col = SddCollector(n=9, ref_x=x[ref], ref_class=np.array([0, 1, 2]), samples=24, rounds=3, seed=0)
    for c in range(3):
        rows = np.arange(3 * c, 3 * c + 3)
        col.visit(c, rows, x[rows], x[rows] @ x[rows].T)
    raw = []
    for i in range(9):
        positives = [x[i] @ x[j] for j in range(9) if j // 3 == i // 3 and j != i]
        negatives = [x[i] @ x[r] for r in ref if r // 3 != i // 3]
        raw.append(_w1_by_cdf(np.array(positives), np.array(negatives)))
    raw = np.array(raw)
    want = 100 * (raw - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(sdd_scores(col.raw), want, atol=1e-3)


def test_sdd_scores_scale_each_round_to_0_100_then_average():
    raw = np.array([[0.1, 1.0], [0.3, 3.0], [0.5, 2.0], [np.nan, np.nan]], dtype=np.float32)
    got = sdd_scores(raw)
    np.testing.assert_allclose(got[:3], [0.0, 75.0, 75.0], atol=1e-4)
    assert np.isnan(got[3])
    for block in (1, 3):  # row blocks: the same bits
        np.testing.assert_array_equal(sdd_scores(raw, block=block), got)


def test_certainty_ratio():
    got = certainty_ratio(np.array([0.8, np.nan]), np.array([0.2, 0.1]), 1e-9)
    assert got[0] == pytest.approx(0.8 / 1.2)
    assert np.isnan(got[1])


def _negatives(seed=4, n=40, c=30, d=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w = rng.standard_normal((c, d))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    own = rng.integers(0, c, n)
    s = x @ w.T
    s[np.arange(n), own] = -np.inf  # own centre is not a negative
    return s


def test_unified_threshold_and_instance_fpr_match_brute_force():
    s = _negatives()
    n, c = s.shape
    target = 0.01
    top = -np.sort(-s, axis=1)[:, :8]  # what the centre search keeps (8 per sample)
    thr = unified_threshold(top.astype(np.float32), c - 1, target)
    allneg = np.sort(s[np.isfinite(s)])[::-1]
    k = math.ceil(target * n * (c - 1))
    assert thr.false_positives == k and thr.total_negatives == n * (c - 1)
    assert thr.value == pytest.approx(allneg[k - 1], abs=1e-6)
    assert thr.saturated == 0
    fpr = instance_fpr(top.astype(np.float32), thr.value, c - 1)
    np.testing.assert_allclose(fpr, (s > thr.value).sum(1) / (c - 1), atol=1e-7)
    assert fpr.mean() == pytest.approx((k - 1) / (n * (c - 1)))  # strict '>': k - 1 false positives


def test_unified_threshold_reports_saturation_and_skips_invalid_rows():
    top = np.array([[0.9, 0.8], [0.1, 0.0], [np.nan, np.nan]], dtype=np.float32)
    thr = unified_threshold(top, num_other=10, target_fpr=0.2)  # 4 of 20 negatives -> pool too small
    assert thr.total_negatives == 20 and thr.false_positives == 4
    assert thr.value == pytest.approx(0.0)
    assert thr.saturated == 1
    fpr = instance_fpr(top, thr.value, 10)
    assert fpr[:2].tolist() == pytest.approx([0.2, 0.1]) and np.isnan(fpr[2])


@pytest.mark.parametrize("k", [1, 2, 7, 40, 119, 120])
def test_kth_largest_over_parts_is_the_sorted_value(k):
    """The bisection on the float32 order finds the k-th largest exactly whatever the split into parts
    (ties, negative values and both zeros included), as np.sort of the whole set says."""
    rng = np.random.default_rng(k)
    values = np.round(rng.uniform(-1, 1, 120), 2).astype(np.float32)  # many ties
    values[:4] = [0.0, -0.0, 0.0, -0.0]
    parts = np.array_split(rng.permutation(values), 3)
    calls = []

    def count(v, step):
        calls.append(step)
        return sum(int((p >= v).sum()) for p in parts)
    got = kth_largest(k, float(values.min()), float(values.max()), count)
    want = np.sort(values)[::-1][k - 1]
    assert got == want and (got != 0 or math.copysign(1, got) == 1)
    assert len(calls) <= 32


def test_inverse_permutations_undo_each_row():
    perms = np.array([[2, 0, 1, 3], [3, 2, 1, 0]])
    inv = inverse_permutations(perms)
    np.testing.assert_array_equal(inv, [[1, 2, 0, 3], [3, 2, 1, 0]])
    np.testing.assert_array_equal(np.take_along_axis(perms, inv, axis=1), [[0, 1, 2, 3]] * 2)
