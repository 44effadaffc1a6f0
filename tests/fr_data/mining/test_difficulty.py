"""Difficulty score and the quantile split."""

import numpy as np

from fr_data.mining.difficulty import difficulty_score, split_by_quantile


def test_difficulty_is_one_minus_certainty_ratio_clipped():
    got = difficulty_score(np.array([0.6, -0.2, 1.3, np.nan]))
    np.testing.assert_allclose(got[:3], [0.4, 1.0, 0.0])
    assert np.isnan(got[3])


def test_split_by_quantile_sizes_and_ineligible_rows():
    d = np.arange(20, dtype=np.float32) / 20
    eligible = np.ones(20, bool)
    eligible[19] = False  # e.g. a suspected mislabel: never in a split
    d[0] = np.nan
    s = split_by_quantile(d, eligible, easy_fraction=0.5, hard_fraction=0.1)
    assert s[0] is None and s[19] is None
    assert (s == "hard").sum() == 2 and set(np.flatnonzero(s == "hard")) == {17, 18}
    assert (s == "easy").sum() == 9 and set(np.flatnonzero(s == "easy")) == set(range(1, 10))
    assert (s == "medium").sum() == 7


def test_zero_hard_fraction_gives_no_hard_rows():
    s = split_by_quantile(np.linspace(0, 1, 10), np.ones(10, bool), 0.3, 0.0)
    assert "hard" not in s.tolist()
