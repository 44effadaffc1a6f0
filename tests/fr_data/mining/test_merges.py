"""Merge candidates: the neighbour-mix score by hand, and both rules."""

import numpy as np

from fr_data.mining.merges import merge_candidates, neighbour_mix


def test_neighbour_mix_by_hand():
    # classes 0 and 1 are each other's nearest; class 2's nearest is 0 (one way only)
    class_of = np.array([0, 0, 1, 1, 2])
    nearest = np.array([1, 0, 0])
    ids = np.array([[1, 2],    # class 0 row: votes 0, 1 -> home 1, away 1
                    [2, 3],    # class 0 row: votes 1, 1 -> away 2
                    [3, -1],   # class 1 row: votes 1 -> home 1 (empty slot ignored)
                    [0, 4],    # class 1 row: votes 0, 2 -> away 1 (class 2 is neither)
                    [4, 0]])   # class 2 row: votes 2 (self id, counted home), 0 -> home 1, away 1
    mix = neighbour_mix(ids, class_of, nearest, chunk=2)
    # one-way shares: class 0: 3/4, class 1: 1/2, class 2: 1/2; 0 and 1 are mutual -> averaged
    np.testing.assert_allclose(mix, [(0.75 + 0.5) / 2, (0.75 + 0.5) / 2, 0.5])


def test_neighbour_mix_is_half_for_one_person_under_two_labels_whatever_the_sizes():
    rng = np.random.default_rng(0)
    # 30 + 10 samples of one person under labels 0 and 1, neighbours drawn uniformly from all 40
    class_of = np.array([0] * 30 + [1] * 10)
    ids = np.stack([rng.choice(np.delete(np.arange(40), i), 10, replace=False) for i in range(40)])
    mix = neighbour_mix(ids, class_of, np.array([1, 0]))
    np.testing.assert_allclose(mix, [0.5, 0.5], atol=0.06)


def test_neighbour_mix_is_nan_without_votes_and_for_classes_without_a_nearest():
    mix = neighbour_mix(np.full((2, 3), -1), np.array([0, 1]), np.array([1, -1]))
    assert np.isnan(mix).all()


def test_merge_candidates_either_rule_and_rules_off():
    cos = np.array([0.9, 0.6, 0.2, np.nan])
    mix = np.array([0.1, 0.45, 0.5, np.nan])
    assert merge_candidates(cos, 0.5).tolist() == [True, True, False, False]
    assert merge_candidates(cos, None, mix, 0.4).tolist() == [False, True, True, False]
    assert merge_candidates(cos, 0.8, mix, 0.48).tolist() == [True, False, True, False]
    assert not merge_candidates(cos, None, mix, None).any()
