"""Merge candidates: the neighbour-mix score by hand, and both rules."""

import numpy as np

from fr_data.mining.merges import merge_candidates, neighbour_mix


def test_neighbour_mix_by_hand():
    # classes 0 and 1 are each other's nearest; class 2's nearest is 0 (one way only)
    class_of = np.array([0, 0, 1, 1, 2])
    nearest = np.array([1, 0, 0])
    ids = np.array([[1, 2],    # class 0: votes 0, 1 -> home0 1, away0 1 (a vote into 1 from 1's nearest)
                    [2, 3],    # class 0: votes 1, 1 -> away0 2
                    [3, -1],   # class 1: votes 1 -> home1 1 (empty slot ignored)
                    [0, 4],    # class 1: votes 0, 2 -> away1 1 (class 2 is neither)
                    [4, 0]])   # class 2: votes 2, 0 -> home2 1, away2 1
    mix = neighbour_mix(ids, class_of, nearest, chunk=2)
    # home [1,1,1], away [3,1,1], back (votes into C from C's nearest class) [1,3,0], n [2,2,1]
    # class 0: observed 3+1, expected ((1+3)*2 + (1+1)*2)/3 = 4 -> 1.0; class 1 likewise 4/4;
    # class 2 (B = 0): observed 1+0, expected ((1+1)*2 + (1+0)*1)/2 = 2.5 -> 0.4
    np.testing.assert_allclose(mix, [1.0, 1.0, 0.4], rtol=1e-6)


def test_neighbour_mix_is_one_for_one_person_under_two_labels_whatever_the_sizes():
    rng = np.random.default_rng(0)
    for sizes in ((150, 50), (20, 300), (100, 100)):
        class_of = np.repeat([0, 1], sizes)
        total = sum(sizes)
        ids = np.stack([rng.choice(np.delete(np.arange(total), i), 10, replace=False) for i in range(total)])
        mix = neighbour_mix(ids, class_of, np.array([1, 0]))
        np.testing.assert_allclose(mix, [1.0, 1.0], atol=0.1)


def test_neighbour_mix_is_zero_for_people_who_keep_their_votes_at_home():
    class_of = np.repeat([0, 1], 6)
    ids = np.array([[j for j in range(6 * (i // 6), 6 * (i // 6) + 6) if j != i] for i in range(12)])
    np.testing.assert_array_equal(neighbour_mix(ids, class_of, np.array([1, 0])), [0.0, 0.0])


def test_neighbour_mix_is_nan_without_votes_and_for_classes_without_a_nearest():
    mix = neighbour_mix(np.full((2, 3), -1), np.array([0, 1]), np.array([1, -1]))
    assert np.isnan(mix).all()


def test_merge_candidates_either_rule_and_rules_off():
    cos = np.array([0.9, 0.6, 0.2, np.nan])
    mix = np.array([0.1, 0.85, 1.0, np.nan])
    assert merge_candidates(cos, 0.5).tolist() == [True, True, False, False]
    assert merge_candidates(cos, None, mix, 0.8).tolist() == [False, True, True, False]
    assert merge_candidates(cos, 0.8, mix, 0.9).tolist() == [True, False, True, False]
    assert not merge_candidates(cos, None, mix, None).any()
