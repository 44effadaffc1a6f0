"""Rank transforms against hand-computed values and a brute-force reference."""

import numpy as np

from fr_data.mining.ranks import average_ranks, percentile_ranks


def test_average_ranks_share_ties():
    np.testing.assert_allclose(average_ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1.0, 3.5, 2.0])


def test_average_ranks_match_a_brute_force_count():
    x = np.random.default_rng(0).integers(0, 5, 40).astype(float)
    brute = [(x < v).sum() + ((x == v).sum() + 1) / 2 for v in x]
    np.testing.assert_allclose(average_ranks(x), brute)


def test_percentile_ranks_scale_to_unit_interval_and_keep_nan():
    got = percentile_ranks(np.array([10.0, np.nan, 30.0, 20.0, np.inf]))
    np.testing.assert_allclose(got[[0, 2, 3]], [0.0, 1.0, 0.5])
    assert np.isnan(got[1]) and np.isnan(got[4])
    np.testing.assert_allclose(percentile_ranks(np.array([np.nan, 7.0])), [np.nan, 0.5])
    assert percentile_ranks(np.array([])).shape == (0,)
