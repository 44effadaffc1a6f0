"""Difficulty score and the quantile split."""

import numpy as np
import pytest

from fr_data.mining.difficulty import (
    difficulty_score,
    model_difficulty,
    split_by_quantile,
    split_codes_by_quantile,
    split_names,
)


def test_model_difficulty_is_one_minus_certainty_ratio_clipped():
    got = model_difficulty(np.array([0.6, -0.2, 1.3, np.nan]))
    np.testing.assert_allclose(got[:3], [0.4, 1.0, 0.0])
    assert np.isnan(got[3])


def test_difficulty_without_capture_term_is_the_rank_of_the_model_term():
    cr = np.array([0.6, -0.2, 1.3, np.nan, 0.9])  # model difficulty 0.4, 1.0, 0.0, NaN, 0.1
    got = difficulty_score(cr)
    np.testing.assert_allclose(got[[0, 1, 2, 4]], [2 / 3, 1.0, 0.0, 1 / 3], rtol=1e-6)
    assert np.isnan(got[3])
    np.testing.assert_array_equal(difficulty_score(cr, np.array([1.0, 0.1, 0.5, 0.2, 0.3]), 0.0), got)


def test_difficulty_averages_model_and_capture_ranks_by_weight():
    cr = np.array([0.9, 0.8, 0.7, 0.6, np.nan])  # model ranks 0, 1/3, 2/3, 1 (row 4 undefined)
    resolution = np.array([0.25, 1.0, 1.0, np.nan, 0.5])  # 1 - res: .75, 0, 0, NaN, .5 -> ranks 1, 1/6, 1/6 (tie), -, 2/3
    got = difficulty_score(cr, resolution, resolution_weight=1.0)
    np.testing.assert_allclose(got, [0.5, 0.25, 5 / 12, 1.0, 2 / 3], rtol=1e-6)
    # by hand, weight 3: (1 * model + 3 * capture) / 4
    got3 = difficulty_score(cr, resolution, resolution_weight=3.0)
    np.testing.assert_allclose(got3[:3], [(0 + 3) / 4, (1 / 3 + 3 / 6) / 4, (2 / 3 + 3 / 6) / 4], rtol=1e-6)
    with pytest.raises(ValueError, match="resolution -1.0"):
        difficulty_score(cr, resolution, -1.0)


def test_the_quality_term_ranks_low_quality_as_hard_and_is_off_at_weight_zero():
    cr = np.array([0.9, 0.8, 0.7, 0.6])  # model ranks 0, 1/3, 2/3, 1
    quality = np.array([10.0, 80.0, np.nan, 40.0])  # -quality: -10, -80, NaN, -40 -> ranks 1, 0, -, 1/2
    got = difficulty_score(cr, None, 0.0, quality, quality_weight=2.0)
    np.testing.assert_allclose(got, [(0 + 2) / 3, (1 / 3 + 0) / 3, 2 / 3, (1 + 1) / 3], rtol=1e-6)
    np.testing.assert_array_equal(difficulty_score(cr, None, 0.0, quality, 0.0), difficulty_score(cr))
    with pytest.raises(ValueError, match="quality -1"):
        difficulty_score(cr, None, 0.0, quality, -1)


def test_low_resolution_images_reach_the_hard_split_through_the_capture_term():
    rng = np.random.default_rng(0)
    cr = rng.uniform(0.5, 0.9, 1000)  # the model cannot tell the degraded images apart
    resolution = np.where(np.arange(1000) < 100, 0.2, rng.uniform(0.5, 1.0, 1000))
    split = split_by_quantile(difficulty_score(cr, resolution, 1.0), np.ones(1000, bool), 0.5, 0.1)
    model_only = split_by_quantile(difficulty_score(cr), np.ones(1000, bool), 0.5, 0.1)
    assert (split[:100] == "hard").mean() > 3 * (model_only[:100] == "hard").mean()


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


@pytest.mark.parametrize("hard_fraction", [0.0, 0.25])
def test_split_codes_restate_the_quantile_rule_with_ties(hard_fraction):
    """The int8 codes rank 0 exchanges name the same split as the rule written with names: hard wins a
    tie with easy, a zero hard fraction turns those rows medium, NaN and ineligible rows get no split."""
    d = np.array([0.1, 0.1, 0.5, 0.5, 0.5, 0.9, 0.9, np.nan, 0.2, 0.9], np.float32)
    eligible = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 1], bool)
    codes = split_codes_by_quantile(d, eligible, 0.99, hard_fraction)
    ok = eligible & ~np.isnan(d)
    hard_at, easy_at = np.quantile(d[ok], 1 - hard_fraction), np.quantile(d[ok], 0.99)
    expected = np.where(d >= hard_at, "hard" if hard_fraction > 0 else "medium",
                        np.where(d <= easy_at, "easy", "medium")).astype(object)
    expected[~ok] = None
    assert codes.dtype == np.int8 and (codes[~ok] == -1).all()
    assert split_names(codes).tolist() == expected.tolist()
    assert split_by_quantile(d, eligible, 0.99, hard_fraction).tolist() == expected.tolist()
