"""Greedy near-duplicate removal on hand-made k-NN graphs."""

import numpy as np

from fr_data.mining.duplicates import duplicate_edges, find_duplicates


def test_edges_are_symmetric_and_thresholded():
    ids = np.array([[1, 2], [0, 2], [-1, -1]])
    sims = np.array([[0.97, 0.5], [0.97, 0.96], [-np.inf, -np.inf]])
    a, b, s = duplicate_edges(ids, sims, 0.95)
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    np.testing.assert_allclose(s, [0.97, 0.97, 0.96, 0.96])


def test_greedy_keeps_highest_priority_and_maps_to_kept_twin():
    # 0-1 duplicates, 1-2 duplicates (a chain), 3 alone; priority: 1 best
    ids = np.array([[1, 3], [0, 2], [1, 0], [0, 1]])
    sims = np.array([[0.98, 0.1], [0.98, 0.96], [0.96, 0.9], [0.1, 0.1]])
    d = find_duplicates(ids, sims, 0.95, priority=np.array([0.5, 0.9, 0.1, 0.3]))
    assert d.of.tolist() == [1, -1, 1, -1]
    np.testing.assert_allclose(d.cos[[0, 2]], [0.98, 0.96])


def test_chain_member_not_adjacent_to_a_kept_sample_stays():
    ids = np.array([[1], [2], [1]])
    sims = np.array([[0.97], [0.96], [0.96]])
    d = find_duplicates(ids, sims, 0.95, priority=np.array([3.0, 2.0, 1.0]))
    assert d.of.tolist() == [-1, 0, -1]  # 0 removes 1; 2's only twin (1) is gone, so 2 is kept


def test_one_sided_listing_is_found_and_nan_priority_is_last():
    ids = np.array([[2], [2], [0]])
    sims = np.array([[0.2], [0.99], [0.2]])
    d = find_duplicates(ids, sims, 0.95, priority=np.array([1.0, np.nan, 0.0]))
    assert d.of.tolist() == [-1, 2, -1]


def test_kinds():
    ids = np.array([[1], [0], [3], [2]])
    sims = np.full((4, 1), 0.99)
    d = find_duplicates(ids, sims, 0.95, priority=np.array([4.0, 3.0, 2.0, 1.0]))
    kinds = d.kinds(np.array([0, 0, 1, 2]))
    assert kinds.tolist() == [None, "same_class", None, "cross_class"]
