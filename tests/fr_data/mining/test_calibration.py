"""Calibrators: hand-checkable values and the records of how they were obtained."""

import numpy as np
import pytest

from fr_data.mining.calibration import (
    HISTOGRAM_BINS,
    SplitHalves,
    calibrate,
    duplicate_cos,
    impostor_mean_cos,
    margin_max,
    merge_cos,
)
from fr_data.mining.config import MiningConfig


def test_duplicate_cos_is_cleanlabs_share_of_the_median_nn_distance():
    top1 = np.array([0.9, 0.8, 0.7, np.nan, -np.inf])  # distances 0.1, 0.2, 0.3: median 0.2
    cal = duplicate_cos(top1, 0.13)
    assert cal.value == pytest.approx(1 - 0.13 * 0.2)
    assert cal.sample_size == 3 and cal.method == "nn_distance_ratio"
    assert cal.params["median_nn_distance"] == pytest.approx(0.2)
    assert "values" not in cal.record() and cal.record()["params"]["ratio"] == 0.13
    assert "histogram" not in cal.record()


def test_a_calibration_keeps_its_distribution_as_the_figures_histogram_only():
    """A run of millions of rows must not carry a value per row to the figure: 60 counts and their edges,
    the same bars as ``hist(values, 60)``."""
    top1 = np.random.default_rng(0).uniform(0.2, 0.99, 1000)
    cal = duplicate_cos(top1, 0.13)
    counts, edges = cal.histogram
    assert cal.values is None and len(counts) == HISTOGRAM_BINS and counts.sum() == 1000
    want_counts, want_edges = np.histogram(1.0 - top1, bins=HISTOGRAM_BINS)
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_array_equal(edges, want_edges)
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    bars = Figure().add_subplot().hist(edges[:-1], bins=edges, weights=counts)[0]
    np.testing.assert_array_equal(bars, want_counts)
    assert duplicate_cos(np.array([np.nan]), 0.13).histogram is None


def test_split_halves_cosine_of_the_two_half_centres():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    sh = SplitHalves(3, seed=0)
    sh.visit(0, np.arange(4), x[:4], x[:4] @ x[:4].T)
    sh.visit(1, np.arange(3), x[:3], x[:3] @ x[:3].T)  # fewer than 4 samples: no value
    perm = np.random.default_rng([0, 0]).permutation(4)
    a, b = x[perm[:2]].sum(0), x[perm[2:]].sum(0)
    assert sh.cos[0] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert np.isnan(sh.cos[1]) and np.isnan(sh.cos[2])


def test_merge_cos_is_a_quantile_of_the_split_halves():
    vals = np.array([0.5, 0.6, 0.7, 0.8, 0.9, np.nan])
    cal = merge_cos(vals, 0.25)
    assert cal.value == pytest.approx(0.6) and cal.sample_size == 5
    assert merge_cos(np.array([np.nan]), 0.1).value is None  # no class of 4: rule off


def test_margin_max_is_minus_a_share_of_the_genuine_impostor_gap():
    center_cos = np.array([0.7, 0.8, 0.9, 0.1, np.nan])  # own label wins for the first three: median 0.8
    own_wins = np.array([True, True, True, False, True])
    cal = margin_max(center_cos, own_wins, 0.2, 0.25)  # gap 0.8 - 0.2 = 0.6
    assert cal.value == pytest.approx(-0.15) and cal.sample_size == 3
    assert cal.params["gap"] == pytest.approx(0.6) and cal.method == "genuine_impostor_gap"
    assert margin_max(center_cos, np.zeros(5, bool), 0.2, 0.25).value == 0.0  # no correctly voted sample
    assert margin_max(center_cos, own_wins, 0.9, 0.25).value == 0.0  # impostors above genuines: no gap
    assert margin_max(center_cos, own_wins, float("nan"), 0.25).value == 0.0  # one class


def test_impostor_mean_cos_is_the_mean_over_every_sample_and_other_centre():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    of = np.array([0, 0, 0, 1, 1, 2, 2])
    sums = np.stack([x[of == c].sum(0) for c in range(4)])  # class 3 has no samples
    counts = np.bincount(of, minlength=4)
    unit = sums[:3] / np.linalg.norm(sums[:3], axis=1, keepdims=True)
    brute = np.mean([x[i] @ unit[c] for i in range(7) for c in range(3) if c != of[i]])
    assert impostor_mean_cos(sums, counts, np.arange(3)) == pytest.approx(brute)
    assert np.isnan(impostor_mean_cos(sums, counts, np.arange(1)))


def test_numbers_in_the_config_override_and_null_turns_merge_cos_off():
    cfg = MiningConfig()
    cfg.duplicates.cos, cfg.classes.merge_cos, cfg.noise.margin_max = 0.9, None, -0.3
    cal = calibrate(cfg, np.array([0.5, 0.6]), np.array([0.7, 0.8]), np.array([0.1, 0.2]), np.ones(2, bool),
                    np.array([0.8, 0.9]), 0.1)
    assert [(c.value, c.method) for c in cal.values()] == [(0.9, "override"), (None, "off"),
                                                           (-0.3, "override")]
    auto = calibrate(MiningConfig(), np.array([0.5, 0.6]), np.array([0.7, 0.8]), np.array([0.1, 0.2]),
                     np.ones(2, bool), np.array([0.8, 0.9]), 0.1)
    assert [c.method for c in auto.values()] == ["nn_distance_ratio", "split_half_quantile",
                                                 "genuine_impostor_gap"]
