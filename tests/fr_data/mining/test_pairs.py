"""Pair mining: per-class extremes, per-group top selection, hard negatives."""

import numpy as np

from fr_data.mining.pairs import PositiveExtremes, hard_negatives, mine_pairs, top_per_group


def test_positive_extremes_skip_duplicates_for_easy_pairs():
    gram = np.array([[1.0, 0.99, 0.5, 0.1],
                     [0.99, 1.0, 0.6, 0.2],
                     [0.5, 0.6, 1.0, 0.3],
                     [0.1, 0.2, 0.3, 1.0]])
    ext = PositiveExtremes(6)
    rows = np.array([1, 2, 4, 5])
    ext.visit(0, rows, None, gram)
    ext.settle(0.95)
    assert ext.hard_id[rows].tolist() == [5, 5, 5, 1]
    assert ext.easy_id[rows].tolist() == [4, 4, 2, 4]  # 0.99 is a duplicate, not an easy pair
    np.testing.assert_allclose(ext.easy_cos[rows], [0.5, 0.6, 0.6, 0.3])
    assert ext.hard_id[0] == -1


def test_settle_applies_a_threshold_known_only_after_the_visit():
    gram = np.array([[1.0, 0.9, 0.5], [0.9, 1.0, 0.4], [0.5, 0.4, 1.0]])
    ext = PositiveExtremes(3, easy_candidates=2)
    ext.visit(0, np.arange(3), None, gram)
    ext.settle(0.95)
    assert ext.easy_id.tolist() == [1, 0, 0]
    ext.settle(0.85)  # 0.9 is now a duplicate: the next candidate is taken
    assert ext.easy_id.tolist() == [2, 2, 0]
    ext.settle(0.3)  # nothing below: no easy partner
    assert ext.easy_id.tolist() == [-1, -1, -1] and np.isnan(ext.easy_cos).all()


def test_top_per_group():
    group = np.array([0, 0, 0, 1, 1, 2])
    score = np.array([0.1, 0.9, 0.5, 0.3, 0.4, 0.0])
    assert sorted(top_per_group(group, score, 2).tolist()) == [1, 2, 3, 4, 5]
    assert sorted(top_per_group(group, score, 1).tolist()) == [1, 4, 5]


def test_hard_negatives_skip_same_class_ineligible_and_merge_partners():
    class_of = np.array([0, 0, 1, 2, 3])
    nn = np.array([[1, 2, 3, 4], [0, 2, 3, 4], [0, 1, 3, 4], [0, 1, 2, 4], [0, 1, 2, 3]])
    sims = np.tile(np.array([0.9, 0.8, 0.7, 0.6]), (5, 1))
    eligible = np.array([True, True, True, True, False])
    partner = np.array([1, 0, -1, -1])  # classes 0 and 1: one person
    ids, cos = hard_negatives(nn, sims, eligible, class_of, partner)
    assert ids.tolist() == [3, 3, 3, 0, -1]  # 0-1 same class or partners; 4 is not eligible
    np.testing.assert_allclose(cos[:4], [0.7, 0.7, 0.7, 0.9])
    assert np.isnan(cos[4])
    # in row blocks, and for a share of the rows (rows 2.. of a rank), the same answers
    for block in (1, 2):
        got = hard_negatives(nn, sims, eligible, class_of, partner, block=block)
        assert got[0].tolist() == ids.tolist()
        share = hard_negatives(nn[2:], sims[2:], eligible, class_of, partner, first_row=2, block=block)
        assert share[0].tolist() == ids[2:].tolist()


def test_mine_pairs_dedupes_unordered_pairs_and_caps_per_class():
    ext = PositiveExtremes(4)
    ext.visit(0, np.array([0, 1, 2, 3]), None, np.array([
        [1, .8, .3, .2], [.8, 1, .4, .1], [.3, .4, 1, .7], [.2, .1, .7, 1.0]]))
    ext.settle(0.95)
    neg_id, neg_cos = np.full(4, -1), np.full(4, np.nan)
    p = mine_pairs(ext, neg_id, neg_cos, np.ones(4, bool), np.zeros(4, int), (1, 5, 1))
    kinds = p.kind.tolist()
    assert kinds.count("easy_pos") == 1 and kinds.count("hard_neg") == 0
    easy = [(a, b) for a, b, k in zip(p.a, p.b, kinds) if k == "easy_pos"]
    assert {tuple(sorted(e)) for e in easy} == {(0, 1)}
    hard = {tuple(sorted((a, b))) for a, b, k in zip(p.a, p.b, kinds) if k == "hard_pos"}
    assert hard == {(0, 3), (1, 3), (0, 2)}  # 1-3 (0.1), 0-3 (0.2), 2-0 (0.3); 3's hardest is 1
