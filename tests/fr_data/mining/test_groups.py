"""k-means groups over class centres and the per-group FPR bias report."""

import numpy as np
import pytest

from fr_data.mining.groups import bias_report, kmeans_class_groups


def test_kmeans_recovers_well_separated_clusters():
    rng = np.random.default_rng(0)
    dirs = np.eye(16)[:3]
    member = np.repeat(np.arange(3), 20)
    x = dirs[member] + 0.05 * rng.standard_normal((60, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    got = kmeans_class_groups(x.astype(np.float32), 3, 20, seed=0)
    for c in range(3):
        assert len(set(got[member == c].tolist())) == 1
    assert len(set(got.tolist())) == 3


def test_kmeans_with_fewer_rows_than_groups():
    x = np.eye(4, dtype=np.float32)[:2]
    assert sorted(kmeans_class_groups(x, 5, 5, 0).tolist()) == [0, 1]


def test_bias_report_is_mean_instance_fpr_per_group():
    codes = np.array([0, 0, 1, 1, -1, 1])  # A A B B (none) B
    class_of = np.array([0, 1, 2, 2, 3, 3])
    fpr = np.array([0.0, 0.2, 0.1, 0.3, 0.9, np.nan])
    t = bias_report(codes, ["A", "B"], class_of, fpr, "attribute:race").to_pylist()
    overall = np.mean([0.0, 0.2, 0.1, 0.3])
    assert [r["group"] for r in t] == ["A", "B"]
    assert t[0]["fpr"] == pytest.approx(0.1) and t[1]["fpr"] == pytest.approx(0.2)
    assert t[0]["fpr_ratio"] == pytest.approx(0.1 / overall)
    assert [r["n_samples"] for r in t] == [2, 3] and [r["n_classes"] for r in t] == [2, 2]
    assert {r["source"] for r in t} == {"attribute:race"}
