"""Resolution / pose bins and DuckDB attribute joins (by key, by source_index, by label)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.io.errors import DataError
from fr_data.mining.splits import (
    bin_values,
    join_attributes,
    pose_bins_from_flip,
    pose_bins_from_yaw,
    resolution_bins,
)


def test_bins_edges_are_left_closed_and_nan_is_none():
    got = resolution_bins(np.array([0.125, 0.3, 0.5, 0.6, 1.0, np.nan]), [0.3, 0.6])
    assert got.tolist() == ["low", "mid", "mid", "high", "high", None]
    got = pose_bins_from_flip(np.array([0.5, 0.8, 0.95]), [0.7, 0.85])
    assert got.tolist() == ["profile", "half", "frontal"]
    assert pose_bins_from_yaw(np.array([-75.0, 10.0, 45.0, 60.0]), [30, 60]).tolist() == \
        ["profile", "frontal", "half", "profile"]
    with pytest.raises(ValueError):
        bin_values(np.zeros(2), [0.6, 0.3], ["a", "b", "c"])


def _samples():
    return pa.table({"key": ["a", "b", "c", "d"], "label": pa.array([1, 1, 2, 3], pa.int64()),
                     "split": ["easy", "hard", None, "easy"]})


def test_join_by_key_counts_unmatched_and_renames_clashes(tmp_path):
    attr = tmp_path / "attr.parquet"
    pq.write_table(pa.table({"key": ["d", "a", "zz"], "yaw": [10.0, -70.0, 5.0],
                             "split": ["x", "y", "z"]}), attr)
    j = join_attributes(_samples(), attr, reserved=["group"])
    assert j.by == "key"
    assert j.table.column("key").to_pylist() == ["a", "b", "c", "d"]  # order kept
    assert j.table.column("yaw").to_pylist() == [-70.0, None, None, 10.0]
    assert j.table.column("attr_split").to_pylist() == ["y", None, None, "x"]
    assert j.table.column("split").to_pylist() == ["easy", "hard", None, "easy"]
    assert (j.attribute_rows, j.unmatched_attribute_rows, j.samples_without_attributes) == (3, 1, 2)


def test_join_by_label_gives_every_sample_its_identity_attribute(tmp_path):
    attr = tmp_path / "race.parquet"
    pq.write_table(pa.table({"label": pa.array([1, 3, 99], pa.int32()), "race": ["A", "B", "C"]}), attr)
    j = join_attributes(_samples(), attr)
    assert j.by == "label"
    assert j.table.column("race").to_pylist() == ["A", "A", None, "B"]
    assert (j.unmatched_attribute_rows, j.samples_without_attributes) == (1, 1)


def test_join_by_source_index_goes_through_the_shard_manifest(tmp_path):
    shards = tmp_path / "samples.parquet"
    pq.write_table(pa.table({"key": ["a", "b", "c", "d"],
                             "source_index": pa.array([11, 12, 13, 14], pa.int64()),
                             "label": pa.array([1, 1, 2, 3], pa.int64())}), shards)
    attr = tmp_path / "attributes.parquet"
    pq.write_table(pa.table({"source_index": pa.array([14, 12, 77], pa.int64()),
                             "label": pa.array([3, 1, 5], pa.int64()), "scale": [0.25, 1.0, 0.5]}), attr)
    j = join_attributes(_samples(), attr, shards)
    assert j.by == "source_index"
    assert j.table.column("scale").to_pylist() == [None, 1.0, None, 0.25]
    assert j.table.column("source_index").to_pylist() == [None, 12, None, 14]
    assert "attr_label" not in j.columns and "label" not in j.columns
    assert (j.unmatched_attribute_rows, j.samples_without_attributes) == (1, 2)
    with pytest.raises(DataError, match="shard manifest"):
        join_attributes(_samples(), attr)


def test_duplicate_or_missing_join_keys_are_errors(tmp_path):
    attr = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"key": ["a", "a"], "v": [1, 2]}), attr)
    with pytest.raises(DataError, match="key 'a'"):
        join_attributes(_samples(), attr)
    nokey = tmp_path / "nokey.parquet"
    pq.write_table(pa.table({"v": [1]}), nokey)
    with pytest.raises(DataError, match="no join column"):
        join_attributes(_samples(), nokey)
    with pytest.raises(DataError, match="does not exist"):
        join_attributes(_samples(), tmp_path / "missing.parquet")
