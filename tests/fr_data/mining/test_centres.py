"""Class centres, leave-one-out centre cosine, nearest classes, centre search, merge candidates."""

import numpy as np
import pytest

from fr_data.mining import centres as ctr
from tests.fr_data.mining.planted import brute_knn


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_class_index_groups_valid_rows_by_label():
    labels = np.array([7, 3, 7, 3, 9, 7])
    ok = np.array([True, True, False, True, True, True])
    ci = ctr.build_class_index(labels, ok)
    assert ci.labels.tolist() == [3, 7, 9]
    assert ci.rows(0).tolist() == [1, 3]
    assert ci.rows(1).tolist() == [0, 5]
    assert ci.rows(2).tolist() == [4]
    assert ci.counts.tolist() == [2, 2, 1]
    assert ci.of_sample.tolist() == [1, 0, 1, 0, 2, 1]


def test_accumulate_sums_matches_numpy_and_flags_bad_rows(tmp_path):
    rng = np.random.default_rng(0)
    x = _unit(rng.standard_normal((50, 8)))
    x[3] = np.nan
    x[7] = 0.0
    of = rng.integers(0, 4, 50).astype(np.int32)
    sums, ok, finite = ctr.accumulate_sums(x.astype(np.float16), of, 4, chunk_rows=16)
    assert not ok[3] and not ok[7] and ok.sum() == 48
    assert not finite[3] and finite[7]
    x64 = x.astype(np.float16).astype(np.float64)
    with np.errstate(invalid="ignore"):
        x64 /= np.linalg.norm(x64, axis=1, keepdims=True)
    for c in range(4):
        rows = (of == c) & ok
        np.testing.assert_allclose(sums[c], x64[rows].sum(0), atol=1e-5)


def test_centres_spread_is_mean_cosine_to_the_centre():
    x = _unit([[1, 0], [0, 1], [1, 1], [-1, 0.2]])
    of = np.array([0, 0, 0, 1])
    sums = np.zeros((2, 2))
    ctr.add_class_sums(sums, of, x)
    c = ctr.make_centres(sums, np.array([3, 1]))
    expect_centre = x[:3].sum(0) / np.linalg.norm(x[:3].sum(0))
    np.testing.assert_allclose(c.unit[0], expect_centre, atol=1e-6)
    np.testing.assert_allclose(c.spread[0], (x[:3] @ expect_centre).mean(), atol=1e-6)
    np.testing.assert_allclose(c.spread[1], 1.0, atol=1e-6)
    assert c.active.tolist() == [0, 1]


def test_leave_one_out_cos_matches_recomputed_centre():
    rng = np.random.default_rng(1)
    x = _unit(rng.standard_normal((9, 5)))
    of = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    sums = np.zeros((3, 5))
    ctr.add_class_sums(sums, of, x)
    c = ctr.make_centres(sums, np.array([6, 2, 1]))
    got = c.leave_one_out(x, of)
    for i in range(8):
        rest = x[(of == of[i]) & (np.arange(9) != i)].astype(np.float64).sum(0)
        np.testing.assert_allclose(got[i], x[i] @ rest / np.linalg.norm(rest), atol=1e-6)
    assert np.isnan(got[8])  # a single-image class has no leave-one-out centre


def test_own_centre_dot_in_blocks():
    rng = np.random.default_rng(2)
    x, unit = rng.standard_normal((10, 3)), rng.standard_normal((4, 3))
    own = rng.integers(0, 4, 10)
    np.testing.assert_allclose(ctr.own_centre_dot(x, unit, own, block=3), (x * unit[own]).sum(1))


def test_nearest_classes():
    sums = np.array([[1.0, 0, 0], [0.9, 0.1, 0], [0, 0, 1.0]]) * 4
    c = ctr.make_centres(sums, np.array([4, 4, 4]))
    near, cos = ctr.nearest_classes(c, brute_knn)
    assert near.tolist() == [1, 0, 0]  # class 2 ties at cos 0: smaller id wins
    assert cos[0] > 0.99 and abs(cos[2]) < 1e-6


def test_search_centres_removes_own_class_and_keeps_order():
    sums = np.eye(4) * 3
    c = ctr.make_centres(sums, np.array([3, 3, 3, 3]))
    x = _unit([[1.0, 0.5, 0.2, 0.0], [0.0, 0.1, 1.0, 0.3]])
    hits = ctr.search_centres(x, np.array([0, 2]), c, k=3, m=2, knn=brute_knn)
    assert hits.nearest_other.tolist() == [1, 3]
    assert hits.candidates.tolist() == [[1, 2], [3, 1]]
    np.testing.assert_allclose(hits.nearest_other_cos, [x[0, 1], x[1, 3]], atol=1e-6)
    assert hits.negatives.shape == (2, 3)
    assert np.all(np.diff(hits.negatives, axis=1) <= 0)


@pytest.mark.parametrize("long_segment", [256, 2], ids=["passes", "passes-and-reduceat"])
@pytest.mark.parametrize("labels", [
    [4, 0, 2, 4, 4, 0, 5, 4, 2, 4, 4, 5, 4, 0, 6],  # unsorted; classes 1 and 3 have no rows, 4 has seven
    [0, 0, 0, 2, 2, 4, 4, 4, 4, 4, 4, 4, 5, 5, 6],  # grouped (sorted shards), the same gaps
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],  # one row per class, sorted
    [14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0],  # one row per class, unsorted
], ids=["unsorted", "sorted", "one-per-class", "one-per-class-unsorted"])
def test_add_class_sums_matches_a_per_class_restatement(monkeypatch, long_segment, labels):
    """Each sum is the float64 sum of its class's rows, in one chunk or two (classes split across them),
    and a class without rows stays zero: the fast segment sum (rank passes, reduceat for long classes, no
    gather for grouped labels, a slice for consecutive ids) restated per class."""
    monkeypatch.setattr(ctr, "LONG_SEGMENT", long_segment)
    of = np.array(labels)
    x = _unit(np.random.default_rng(3).standard_normal((len(of), 6)))
    before = x.copy()
    for chunks in ([slice(0, 15)], [slice(0, 6), slice(6, 15)]):
        sums = np.zeros((15, 6))
        for part in chunks:
            ctr.add_class_sums(sums, of[part], x[part])
        for c in range(15):
            np.testing.assert_allclose(sums[c], x[of == c].astype(np.float64).sum(0), atol=1e-6)
    if 1 not in labels:
        assert not sums[1].any() and not sums[3].any()
    np.testing.assert_array_equal(x, before)  # the chunk is left alone


def test_make_centres_in_blocks_matches_the_whole_table_formula():
    """Blocks of 2 rows, a class without rows (inactive: zero centre, not in db); all active: db is unit."""
    sums = np.random.default_rng(5).standard_normal((5, 4))
    sums[2] = 0.0
    counts = np.array([3, 1, 0, 2, 4])
    c = ctr.make_centres(sums, counts, block=2)
    assert c.active.tolist() == [0, 1, 3, 4] and not c.unit[2].any() and np.isnan(c.spread[2])
    norm = np.linalg.norm(sums, axis=1)
    np.testing.assert_array_equal(c.unit[c.active], (sums[c.active] / norm[c.active, None]).astype(np.float32))
    np.testing.assert_array_equal(c.db, c.unit[c.active])
    np.testing.assert_allclose(c.spread[c.active], norm[c.active] / counts[c.active], rtol=1e-6)
    full = ctr.make_centres(sums[[0, 1, 3]], counts[[0, 1, 3]], block=2)
    assert full.db is full.unit
