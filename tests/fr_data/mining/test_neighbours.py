"""Sample k-NN: running top-k merge, visitor CSR, candidate search vs exact search."""

import numpy as np

from fr_data.mining.centres import build_class_index
from fr_data.mining.neighbours import (
    CandidateNeighbours,
    TopK,
    class_pass,
    exact_neighbours,
    visitors_by_class,
)
from tests.fr_data.mining.planted import brute_knn


def test_topk_merge_keeps_best_sorted_with_id_ties():
    t = TopK.empty(2, 3)
    t.merge(np.array([0, 1]), np.array([[0.5, 0.9], [0.1, 0.2]]), np.array([10, 11]))
    t.merge(np.array([0]), np.array([[0.9, 0.7, 0.1]]), np.array([4, 5, 6]))
    assert t.ids[0].tolist() == [4, 11, 5]  # 0.9 (id 4) before 0.9 (id 11), then 0.7
    np.testing.assert_allclose(t.sims[0], [0.9, 0.9, 0.7])
    assert t.ids[1].tolist() == [11, 10, -1]
    assert t.sims[1, 2] == -np.inf


def test_visitors_by_class_is_a_csr_of_candidate_lists():
    cand = np.array([[1, 2], [2, -1], [1, 0]])
    rows, starts = visitors_by_class(cand, 3)
    assert [rows[starts[c]:starts[c + 1]].tolist() for c in range(3)] == [[2], [0, 2], [0, 1]]


def _data(seed=0, n=120, d=16, c=8):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((c, d))
    labels = rng.integers(0, c, n)
    x = mu[labels] + 0.8 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_candidate_search_with_all_classes_equals_exact_search():
    x, labels = _data()
    ci = build_class_index(labels, np.ones(len(x), bool))
    cand = np.array([[c for c in range(ci.num_classes) if c != ci.of_sample[i]] for i in range(len(x))])
    nb = CandidateNeighbours(x, len(x), 5, visitors_by_class(cand, ci.num_classes))
    class_pass(x, ci, [nb])
    exact = exact_neighbours(x, np.arange(len(x)), 5, brute_knn)
    np.testing.assert_array_equal(nb.topk.ids, exact.ids)
    np.testing.assert_allclose(nb.topk.sims, exact.sims, atol=1e-5)


def test_candidate_search_only_looks_at_own_and_candidate_classes():
    x, labels = _data(1)
    ci = build_class_index(labels, np.ones(len(x), bool))
    cand = np.full((len(x), 1), -1)
    cand[0, 0] = (ci.of_sample[0] + 1) % ci.num_classes
    nb = CandidateNeighbours(x, len(x), 4, visitors_by_class(cand, ci.num_classes))
    class_pass(x, ci, [nb])
    allowed = {ci.of_sample[0], cand[0, 0]}
    assert set(ci.of_sample[nb.topk.ids[0]].tolist()) <= allowed
    others = nb.topk.ids[1:][nb.topk.ids[1:] >= 0]
    rows = np.repeat(np.arange(1, len(x)), 4)[(nb.topk.ids[1:] >= 0).ravel()]
    assert np.all(ci.of_sample[others] == ci.of_sample[rows])  # no candidates: own class only
    assert not np.any(nb.topk.ids == np.arange(len(x))[:, None])  # self excluded


def test_exact_neighbours_skip_invalid_rows():
    x, _ = _data(2, n=20)
    valid = np.array([i for i in range(20) if i not in (3, 8)])
    t = exact_neighbours(x, valid, 3, brute_knn)
    assert np.all(t.ids[[3, 8]] == -1)
    assert not np.isin(t.ids[valid], [3, 8]).any()
    ref = brute_knn(x[valid], x[valid], 3, exclude_self=True)
    np.testing.assert_array_equal(t.ids[valid], valid[ref.ids])
