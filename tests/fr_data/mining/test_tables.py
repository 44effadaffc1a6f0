"""The pieces of ``fr_data.mining.tables`` that let each rank write its own rows: groups as codes, the
classes' modal group, value counts added up over shares, the pairs' lookups."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fr_data.mining.pairs import Pairs
from fr_data.mining.tables import group_codes, merged_counts, modal_groups, pair_lookup, pairs_table


def test_group_codes_index_the_sorted_names():
    group = np.array(["b", None, "a", "b"], dtype=object)
    assert group_codes(group, ["a", "b"]).tolist() == [1, -1, 0, 1]


def test_modal_group_by_hand_ties_go_to_the_group_met_first():
    # class 0: b a b a (2 - 2, b first) ; class 1: a b b (b) ; class 2: no group ; class 3: c
    codes = np.array([1, 0, 1, 0, 0, 1, 1, -1, 2])
    class_of = np.array([0, 0, 0, 0, 1, 1, 1, 2, 3])
    assert modal_groups(codes, class_of, 4).tolist() == [1, 1, -1, 2]
    rows = np.arange(len(codes))[::-1]  # the same rows met in the other order: class 0 now meets a first
    assert modal_groups(codes[rows], class_of[rows], 4).tolist()[0] == 0


def test_modal_group_is_the_plain_mode_without_ties():
    rng = np.random.default_rng(0)
    class_of = rng.integers(0, 30, 2000)
    codes = np.where(rng.random(2000) < 0.1, -1, (class_of + rng.integers(0, 2, 2000) * (rng.random(2000) < 0.2)) % 7)
    got = modal_groups(codes, class_of, 30)
    for c in range(30):
        counts = np.bincount(codes[(class_of == c) & (codes >= 0)], minlength=7)
        assert counts[got[c]] == counts.max()


def test_value_counts_of_shares_add_up_in_the_order_first_met():
    assert list(merged_counts([{"x": 1, "None": 2}, {"y": 3, "x": 4}]).items()) == [("x", 5), ("None", 2), ("y", 3)]


def test_pairs_from_the_lookups_of_two_shares():
    part0 = pa.table({"key": ["k0", "k1", "k2"], "pose_bin": ["frontal", None, "half"],
                      "resolution_bin": ["high", "low", None]})
    part1 = pa.table({"key": ["k3", "k4"], "pose_bin": ["profile", "half"], "resolution_bin": ["mid", "mid"]})
    pairs = Pairs(np.array([4, 0]), np.array([1, 3]), np.array([0.5, 0.25], np.float32),
                  np.array(["hard_neg", "easy_pos"], dtype=object))
    wanted = np.array([0, 1, 3, 4])
    found = pair_lookup(part1, 3, wanted) + pair_lookup(part0, 0, wanted)
    t = pairs_table(found, np.array([10, 10, 11, 12, 12]), pairs).to_pydict()
    assert t["key_a"] == ["k4", "k0"] and t["key_b"] == ["k1", "k3"]
    assert t["label_a"] == [12, 10] and t["label_b"] == [10, 12]
    assert t["pose_bin_b"] == [None, "profile"] and t["resolution_bin_a"] == ["mid", "high"]
