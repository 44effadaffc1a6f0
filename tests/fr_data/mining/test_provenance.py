"""Mining's provenance columns: copied by key (``samples``) and by label (``classes``) from the shard
manifest ``--samples``; nulls without one or from a manifest written before the columns existed."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.folders.shard_folder import (
    PROVENANCE_SCHEMA,
    SAMPLES_SCHEMA,
    read_input_samples,
    read_provenance,
    read_samples,
)
from fr_data.io.parquet import concat_parquet
from fr_data.mining.provenance import add_provenance


def manifest(path, provenance: bool):
    """Three samples of labels 0, 1, 1 (rows not in key order); with or without the provenance columns."""
    cols = {"key": ["k2", "k0", "k1"], "label": pa.array([1, 0, 1], pa.int64()), "shard": ["s"] * 3,
            "source_index": pa.array([2, 0, 1], pa.int64()), "width": pa.array([8] * 3, pa.int32()),
            "height": pa.array([8] * 3, pa.int32()), "bytes": pa.array([1] * 3, pa.int64()),
            "sha256": ["x"] * 3, "ext": ["jpg"] * 3, "decoded_ok": pa.array([None] * 3, pa.bool_())}
    if provenance:
        cols |= {"source_path": ["b/2.jpg", "a/0.jpg", "b/1.jpg"], "identity": ["b", "a", "b"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)
    return path


def mined():
    samples = pa.table({"key": ["k0", "k1", "k2"], "label": pa.array([0, 1, 1], pa.int64())})
    classes = pa.table({"label": pa.array([0, 1], pa.int64())})
    return samples, classes


def test_columns_come_by_key_and_label(tmp_path):
    samples, classes = add_provenance(*mined(), manifest(tmp_path / "new" / "samples.parquet", True))
    assert samples.column("source_path").to_pylist() == ["a/0.jpg", "b/1.jpg", "b/2.jpg"]
    assert samples.column("identity").to_pylist() == ["a", "b", "b"]
    assert classes.column("identity").to_pylist() == ["a", "b"]


def test_no_manifest_or_an_old_one_gives_nulls(tmp_path):
    old = manifest(tmp_path / "old" / "samples.parquet", False)
    for given in (None, old):
        samples, classes = add_provenance(*mined(), given)
        assert samples.column("source_path").null_count == 3 and samples.column("identity").type == pa.string()
        assert classes.column("identity").to_pylist() == [None, None]


def test_an_old_shard_folder_still_reads(tmp_path):
    old = manifest(tmp_path / "old" / "samples.parquet", False)
    assert read_samples(old.parent).num_rows == 3 and "source_path" not in read_samples(old.parent).column_names
    assert read_input_samples(old, ["key", "label"]).num_rows == 3
    assert read_provenance(old) is None
    assert read_provenance(manifest(tmp_path / "new" / "samples.parquet", True)).column("identity").to_pylist() \
        == ["b", "a", "b"]


def test_a_resumed_run_with_an_old_part_fills_nulls(tmp_path):
    old = manifest(tmp_path / "old" / "samples.parquet", False)
    new = manifest(tmp_path / "new" / "samples.parquet", True)
    concat_parquet([old, new], tmp_path / "all.parquet", SAMPLES_SCHEMA, PROVENANCE_SCHEMA)
    table = pq.read_table(tmp_path / "all.parquet")
    assert table.column_names[-2:] == ["source_path", "identity"]
    assert table.column("source_path").to_pylist() == [None, None, None, "b/2.jpg", "a/0.jpg", "b/1.jpg"]
