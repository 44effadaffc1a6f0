"""Splitting mining's searches over ranks and merging the parts (issue 25): shares and class ranges by
hand, the canonical top k whatever the order of the candidates, and each split search equal to the
whole one (ties included: the data has exact copies)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fr_data.io.errors import DataError
from fr_data.knn.topk import select_topk
from fr_data.mining.centres import build_class_index
from fr_data.mining.group import SOLO, RankError, Ranks, share, split_by_cost
from fr_data.mining.inputs import UnitRows, read_rows
from fr_data.mining.knnfn import default_knn
from fr_data.mining.neighbours import (
    CandidateNeighbours,
    TopK,
    VisitorLists,
    class_costs,
    class_pass,
    exact_neighbours,
    exact_share,
    touched_rows,
    visit_counts,
    visitors_by_class,
)


def test_shares_by_hand():
    assert [share(7, r, 3) for r in range(3)] == [(0, 2), (2, 4), (4, 7)]
    assert [share(2, r, 3) for r in range(3)] == [(0, 0), (0, 1), (1, 2)]  # more ranks than rows


@pytest.mark.parametrize("n", [0, 1, 5, 7, 10])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shares_cover_every_row_once(n, world):
    spans = [share(n, r, world) for r in range(world)]
    assert [i for a, b in spans for i in range(a, b)] == list(range(n))
    sizes = [b - a for a, b in spans]
    assert max(sizes) - min(sizes) <= 1


def test_class_ranges_by_cost_by_hand():
    assert split_by_cost(np.array([5, 1, 1, 1, 1, 1]), 2).tolist() == [0, 1, 6]  # 5 | 5
    assert split_by_cost(np.array([1, 1, 1]), 3).tolist() == [0, 1, 2, 3]
    assert split_by_cost(np.array([9.0]), 3).tolist() == [0, 1, 1, 1]  # empty ranges are fine
    assert class_costs(np.array([2, 3]), np.array([1, 0])).tolist() == [6.0, 9.0]  # n (n + visitors)


def test_select_topk_is_canonical_whatever_the_column_order():
    sims = np.array([0.5, 0.9, 0.5, 0.5, 0.1], np.float32)
    ids = np.array([7, 3, 2, 9, 1])
    for perm in itertools.permutations(range(5)):
        s, i = select_topk(sims[None, list(perm)], ids[None, list(perm)], 2)
        assert i.tolist() == [[3, 2]] and s.tolist() == [[pytest.approx(0.9), 0.5]], perm


def test_topk_merges_in_any_order_give_one_graph():
    parts = [(np.array([[0.5]], np.float32), np.array([4])),
             (np.array([[0.5, 0.5]], np.float32), np.array([6, 1])),
             (np.array([[-np.inf, 0.25]], np.float32), np.array([0, 5]))]  # -inf: the sample itself
    for order, k in itertools.product(itertools.permutations(parts), (2, 4)):
        t = TopK.empty(1, k)
        for sims, cand in order:
            t.merge(np.array([0]), sims, cand)
        assert t.ids.tolist() == [[1, 4, 6, 5][:k]], order  # three tie at 0.5: the smaller ids stay
    t = TopK.empty(1, 5)
    for sims, cand in parts:
        t.merge(np.array([0]), sims, cand)
    assert t.ids[0, 4] == -1 and np.isneginf(t.sims[0, 4])  # the sample itself is an empty slot
    ids, sims = t.ids.copy(), t.sims.copy()
    t.merge_lists(np.array([0]), np.full((1, 5), -np.inf, np.float32), np.full((1, 5), -1))
    np.testing.assert_array_equal(t.ids, ids)  # a rank's row without neighbours merges as nothing
    np.testing.assert_array_equal(t.sims, sims)


def _data_with_copies(seed: int = 0, n: int = 60, classes: int = 6, dim: int = 8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x[[10, 11, 30]] = x[5]  # exact copies: equal scores, the smaller id first
    labels = np.arange(n) % classes
    return x, labels


@pytest.mark.parametrize("world", [2, 3, 4])
def test_candidate_graph_from_class_ranges_equals_one_pass(world):
    x, labels = _data_with_copies()
    ci = build_class_index(labels, np.ones(len(x), bool))
    cand = np.array([[(ci.of_sample[i] + 1) % 6, (ci.of_sample[i] + 3) % 6] for i in range(len(x))])
    visits = visitors_by_class(cand, ci.num_classes)
    whole = CandidateNeighbours(x, len(x), 5, visits)
    class_pass(x, ci, [whole])
    bounds = split_by_cost(class_costs(ci.counts, visit_counts(cand, ci.num_classes)), world)
    merged = TopK.empty(len(x), 5)
    held = 0
    for r in reversed(range(world)):  # rank order does not matter
        classes = range(bounds[r], bounds[r + 1])
        lists = VisitorLists(ci.num_classes, classes)  # the candidate table arrives in row blocks
        for start in range(0, len(cand), 7):
            lists.add(start, cand[start:start + 7])
        own = lists.csr()
        part = CandidateNeighbours(x, len(x), 5, own, classes, segments=[touched_rows(ci, classes, own)],
                                   bounds=np.array([0]))
        class_pass(x, ci, [part], part.classes)
        rows, lists = part.segment(0)
        held += len(rows)
        merged.merge_lists(rows, lists.sims, lists.ids)
    if world > 2:  # each rank holds the lists of the rows its classes touch only (at 2, every row)
        assert held < world * len(x)
    np.testing.assert_array_equal(merged.ids, whole.topk.ids)
    np.testing.assert_array_equal(merged.sims, whole.topk.sims)
    assert set(whole.topk.ids[5, :2].tolist()) == {11, 30}  # its copies: own class and candidate class 0


@pytest.mark.parametrize("world", [1, 2, 3])
def test_exact_shares_streamed_from_the_memmap_equal_the_whole_search(tmp_path, world):
    x, _ = _data_with_copies(1)
    np.save(tmp_path / "x.npy", x.astype(np.float16))
    vectors = np.load(tmp_path / "x.npy", mmap_mode="r")
    valid = np.array([i for i in range(len(x)) if i != 7])
    knn = default_knn()
    whole = exact_neighbours(vectors, valid, 4, knn)
    spans = [share(len(valid), r, world) for r in range(world)]
    parts = [exact_share(vectors, valid, 4, knn, span, stream=True) for span in spans]
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), whole.ids[valid])
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole.sims[valid])
    assert whole.ids[5, :2].tolist() == [10, 11] and whole.sims[5, 0] == whole.sims[5, 1]


def test_unit_rows_read_what_read_rows_reads(tmp_path):
    x, _ = _data_with_copies(2)
    np.save(tmp_path / "x.npy", x.astype(np.float16))
    vectors = np.load(tmp_path / "x.npy", mmap_mode="r")
    rows = np.array([1, 4, 9, 20, 33])
    view, ref = UnitRows(vectors, rows), read_rows(vectors, rows)
    assert view.shape == (5, 8) and len(view) == 5
    np.testing.assert_array_equal(view[1:4], ref[1:4])
    np.testing.assert_array_equal(view[np.array([[4, 0], [2, 2]])], ref[[[4, 0], [2, 2]]])


def test_one_process_check_raises_the_error_itself():
    def bad():
        raise DataError("f.npy", "row 3", "broken")
    with pytest.raises(DataError):
        SOLO.check("inputs", bad)
    with pytest.raises(RankError, match="^lost$"):
        Ranks().agree("inputs", "lost")
    assert SOLO.check("inputs", lambda: 5) == 5
