"""Which pairs of a pack the experiment attacks: half genuine, half impostor, in pack order."""

from __future__ import annotations

import numpy as np

from hardmine.experiment.jobs import attacked_pairs


def test_half_genuine_half_impostor_the_first_of_each_kind():
    issame = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 1], dtype=bool)
    assert attacked_pairs(issame, 4).tolist() == [0, 1, 4, 6]
    assert attacked_pairs(issame, 5).tolist() == [0, 1, 4, 6, 7]  # the odd pair is an impostor one


def test_one_kind_running_out_is_filled_with_the_other():
    issame = np.array([1, 1, 1, 1, 1, 0], dtype=bool)
    assert attacked_pairs(issame, 4).tolist() == [0, 1, 2, 5]
    assert attacked_pairs(~issame, 4).tolist() == [0, 1, 2, 5]


def test_every_pair_without_a_number_or_with_too_large_one():
    issame = np.array([0, 1, 0], dtype=bool)
    assert attacked_pairs(issame, None).tolist() == [0, 1, 2] == attacked_pairs(issame, 10).tolist()
