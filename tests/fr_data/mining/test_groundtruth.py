"""fr_data.mining.groundtruth: mining quality against synthetic ground truth, on hand-made tables."""

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

from fr_data.io.errors import DataError
from fr_data.mining.groundtruth import (
    check_targets,
    detection,
    duplicate_detection,
    format_report,
    hard_enrichment,
    merge_detection,
    score_run,
    spearman,
    truly_hard,
)


def test_detection_counts_precision_and_recall():
    d = detection(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 1, 0, 1], bool))
    assert (d.true_positives, d.predicted, d.actual) == (2, 3, 3)
    assert d.precision == pytest.approx(2 / 3) and d.recall == pytest.approx(2 / 3)
    empty = detection(np.zeros(3, bool), np.zeros(3, bool))
    assert math.isnan(empty.precision) and math.isnan(empty.recall)


def test_duplicates_scored_per_group_with_at_most_g_minus_one_found():
    # group 10 = rows 0,1,2 (an original and two copies); group 20 = rows 3,4; rows 5, 6 alone
    group = np.array([10, 10, 10, 20, 20, 50, 60])
    twin = np.array([-1, 0, 1, -1, 5, -1, -1])  # 1->0 right, 2->1 right (same group), 4->5 wrong
    d = duplicate_detection(twin, group)
    assert (d.true_positives, d.predicted, d.actual, d.found) == (2, 3, 3, 2)
    assert d.precision == pytest.approx(2 / 3) and d.recall == pytest.approx(2 / 3)
    both_ways = duplicate_detection(np.array([-1, -1, -1, 4, 3, -1, -1]), group)  # a pair flagged twice
    assert (both_ways.true_positives, both_ways.found) == (2, 1)


def test_merge_pairs_are_unordered_and_counted_once():
    identity_of_label = {0: 0, 1: 0, 2: 1, 3: 2, 4: 2}  # true pairs (0, 1) and (3, 4)
    labels = np.array([0, 1, 2, 3, 4])
    flagged = np.array([True, True, True, False, False])
    nearest = np.array([1, 0, 3, 4, -1])  # (0,1) twice, (2,3) wrong; (3,4) not flagged
    d = merge_detection(labels, flagged, nearest, identity_of_label)
    assert (d.true_positives, d.predicted, d.actual) == (1, 2, 2)


def test_hard_enrichment_against_rows_with_a_split():
    split = np.array(["hard", "hard", "easy", "easy", "medium", None, "easy", "medium"], dtype=object)
    hard = np.array([1, 0, 0, 0, 1, 1, 0, 0], bool)
    e = hard_enrichment(split, hard)
    assert e.rows == 7 and e.hard_rows == 2
    assert e.hard_share == pytest.approx(0.5) and e.base_rate == pytest.approx(2 / 7)
    assert e.ratio == pytest.approx(1.75)
    assert e.ceiling == pytest.approx(3.5)


def test_truly_hard_uses_abs_yaw_and_scale():
    yaw = np.array([0.0, -60.0, 59.9, 10.0])
    scale = np.array([1.0, 1.0, 0.5, 0.25])
    assert truly_hard(yaw, scale).tolist() == [False, True, False, True]


def test_spearman_matches_scipy_with_ties_and_skips_nan():
    rng = np.random.default_rng(0)
    scale = rng.choice([1.0, 0.5, 0.25, 0.125], size=200)
    estimate = scale + rng.normal(0, 0.2, size=200)
    assert spearman(estimate, scale) == pytest.approx(spearmanr(estimate, scale).statistic, abs=1e-12)
    with_nan = estimate.copy()
    with_nan[:10] = np.nan
    expected = spearmanr(estimate[10:], scale[10:]).statistic
    assert spearman(with_nan, scale) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))


def test_check_targets_treats_nan_as_unmet():
    met = check_targets({"a": 0.95, "b": float("nan"), "c": 0.5}, {"a": 0.9, "b": 0.1, "c": 0.8})
    assert met == {"a": True, "b": False, "c": False}


def _write_run(tmp_path, mined_labels=None):
    """Six images, source indices 1..6, keys k1..k6; labels 0,0,0,1,1,2 (labels 1 and 2 are one person)."""
    keys = [f"k{i}" for i in range(1, 7)]
    labels = mined_labels or [0, 0, 0, 1, 1, 2]
    run = tmp_path / "run"
    run.mkdir()
    pq.write_table(pa.table({
        "key": keys, "label": pa.array(labels, pa.int64()),
        "suspect_mislabel": [False, False, True, True, False, False],
        "duplicate_of": pa.array([None, "k1", None, None, None, None], pa.string()),
        "split": ["easy", "hard", None, "easy", "hard", "medium"],
        "resolution": pa.array([1.0, 0.9, 0.5, 0.3, 0.2, 0.1], pa.float32()),
        "flip_cos": pa.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], pa.float32()),
    }), run / "samples.parquet")
    pq.write_table(pa.table({"label": pa.array([0, 1, 2], pa.int64()),
                             "merge_candidate": [False, True, False],
                             "nearest_label": pa.array([1, 2, 1], pa.int64())}), run / "classes.parquet")
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(pa.table({"key": keys[::-1], "source_index": pa.array([6, 5, 4, 3, 2, 1], pa.int64())}),
                   manifest)
    attributes = tmp_path / "attributes.parquet"
    pq.write_table(pa.table({
        "source_index": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
        "label": pa.array([0, 0, 0, 1, 1, 2], pa.int64()),
        "label_identity": pa.array([0, 0, 0, 1, 1, 1], pa.int64()),
        "mislabeled": [False, False, True, False, False, False],
        "duplicate_of": pa.array([None, 1, None, None, None, None], pa.int64()),
        "yaw": pa.array([0.0, 70.0, 0.0, 0.0, 0.0, 0.0], pa.float32()),
        "scale": pa.array([1.0, 1.0, 0.5, 0.25, 0.125, 1.0], pa.float32()),
    }), attributes)
    return run, attributes, manifest


def test_score_run_joins_through_the_manifest(tmp_path):
    run, attributes, manifest = _write_run(tmp_path)
    report = score_run(run, attributes, manifest)
    m = report.metrics()
    assert report.rows == 6
    assert (m["mislabel_precision"], m["mislabel_recall"]) == (0.5, 1.0)  # k3 right, k4 wrong
    assert (m["duplicate_precision"], m["duplicate_recall"]) == (1.0, 1.0)
    assert (m["merge_precision"], m["merge_recall"]) == (1.0, 1.0)
    # rows with a split: k1,k2,k4,k5,k6; truly hard: k2 (yaw 70), k4, k5 (scale <= 1/4) -> base 3/5;
    # hard split k2, k5 -> share 1
    assert m["hard_enrichment"] == pytest.approx(1 / 0.6)
    assert m["resolution_spearman"] == pytest.approx(spearmanr([1, .9, .5, .3, .2, .1],
                                                               [1, 1, .5, .25, .125, 1]).statistic)
    table = format_report(report)
    assert "mislabel_precision" in table and "NO" in table and "yes" in table
    assert report.as_dict()["targets_met"]["duplicate_recall"] is True


def test_score_run_names_the_file_and_key_on_a_label_mismatch(tmp_path):
    run, attributes, manifest = _write_run(tmp_path, mined_labels=[0, 0, 0, 1, 2, 2])
    with pytest.raises(DataError, match=r"attributes.parquet \(source_index 5\).*k5"):
        score_run(run, attributes, manifest)


def test_score_run_names_a_sample_missing_from_the_manifest(tmp_path):
    run, attributes, manifest = _write_run(tmp_path)
    pq.write_table(pq.read_table(manifest).slice(1), manifest)  # drops k6
    with pytest.raises(DataError, match=r"manifest.parquet \(key k6\)"):
        score_run(run, attributes, manifest)
