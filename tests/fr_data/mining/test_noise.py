"""k-NN label vote and suspected mislabels on hand-made neighbour graphs."""

import numpy as np

from fr_data.mining.noise import knn_vote, suspects


def test_vote_counts_agreement_and_plurality():
    class_of = np.array([0, 0, 1, 1, 1, 2])
    ids = np.array([
        [1, 2, 3, 4],    # row 0 (class 0): 1 same, 3 of class 1
        [0, 5, -1, -1],  # row 1 (class 0): 1 same of 2 found; tie 0 vs 2 -> nearest (0) wins
        [-1, -1, -1, -1],
        [2, 4, 0, 1],
        [2, 3, 0, 5],
        [0, 1, 2, 3],
    ])
    v = knn_vote(ids, class_of, chunk=4)
    np.testing.assert_allclose(v.agreement[:2], [0.25, 0.5])
    assert np.isnan(v.agreement[2]) and v.winner[2] == -1
    assert v.winner.tolist()[:2] == [1, 0]
    np.testing.assert_allclose(v.winner_share[0], 0.75)
    assert v.winner[5] == 0 and v.winner_share[5] == 0.5  # 0,0 vs 1,1: nearest first


def _vote_for(rows_class, neighbour_classes):
    """Vote of rows with class ``rows_class`` whose neighbours carry ``neighbour_classes``."""
    n, k = neighbour_classes.shape
    class_of = np.concatenate([rows_class, neighbour_classes.ravel()])
    ids = np.full((len(class_of), k), -1)
    ids[:n] = n + np.arange(n * k).reshape(n, k)
    return knn_vote(ids, class_of), class_of


def test_suspects_need_vote_and_negative_margin():
    v, class_of = _vote_for(np.zeros(5, int), np.array([[1, 1, 0]] * 4 + [[1, 0, 0]]))
    margin = np.array([-0.2, 0.1, np.nan, -0.01, -0.5] + [0.0] * 15)
    got = suspects(v, class_of, margin, vote_min=0.5, margin_max=0.0)
    assert got[:5].tolist() == [True, False, False, True, False]  # row 4: own class wins the vote
    assert suspects(v, class_of, margin, vote_min=0.7, margin_max=0.0)[:5].sum() == 0


def test_suspects_skip_votes_for_the_merge_partner():
    v, class_of = _vote_for(np.zeros(2, int), np.array([[1, 1], [2, 2]]))
    partner = np.array([1, 0, -1])  # classes 0 and 1 are one person under two labels
    got = suspects(v, class_of, np.full(len(class_of), -0.3), 0.5, 0.0, partner)
    assert got[:2].tolist() == [False, True]
