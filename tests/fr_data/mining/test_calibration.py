"""Calibrators: hand-checkable values and the records of how they were obtained."""

import numpy as np
import pytest

from fr_data.mining.calibration import SplitHalves, calibrate, duplicate_cos, margin_max, merge_cos
from fr_data.mining.config import MiningConfig


def test_duplicate_cos_is_cleanlabs_share_of_the_median_nn_distance():
    top1 = np.array([0.9, 0.8, 0.7, np.nan, -np.inf])  # distances 0.1, 0.2, 0.3: median 0.2
    cal = duplicate_cos(top1, 0.13)
    assert cal.value == pytest.approx(1 - 0.13 * 0.2)
    assert cal.sample_size == 3 and cal.method == "nn_distance_ratio"
    assert cal.params["median_nn_distance"] == pytest.approx(0.2)
    assert "values" not in cal.record() and cal.record()["params"]["ratio"] == 0.13


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


def test_margin_max_is_minus_a_share_of_the_typical_correct_margin():
    margin = np.array([0.2, 0.4, 0.6, -0.5, np.nan])
    own_wins = np.array([True, True, True, False, True])
    cal = margin_max(margin, own_wins, 0.25)
    assert cal.value == pytest.approx(-0.1) and cal.sample_size == 3
    assert margin_max(margin, np.zeros(5, bool), 0.25).value == 0.0


def test_numbers_in_the_config_override_and_null_turns_merge_cos_off():
    cfg = MiningConfig()
    cfg.duplicates.cos, cfg.classes.merge_cos, cfg.noise.margin_max = 0.9, None, -0.3
    cal = calibrate(cfg, np.array([0.5, 0.6]), np.array([0.7, 0.8]), np.array([0.1, 0.2]), np.ones(2, bool))
    assert [(c.value, c.method) for c in cal.values()] == [(0.9, "override"), (None, "off"),
                                                           (-0.3, "override")]
    auto = calibrate(MiningConfig(), np.array([0.5, 0.6]), np.array([0.7, 0.8]), np.array([0.1, 0.2]),
                     np.ones(2, bool))
    assert [c.method for c in auto.values()] == ["nn_distance_ratio", "split_half_quantile",
                                                 "genuine_margin_ratio"]
