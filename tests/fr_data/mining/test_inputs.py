"""Opening an EMB folder: row checks, key uniqueness, validity masks, the recorded hash."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.folders.embeddings_folder import check_recorded_hash, open_embeddings
from fr_data.io.errors import DataError
from fr_data.io.hashing import file_sha256
from fr_data.mining.inputs import iter_chunks, normalise_rows, read_rows


def _emb(tmp_path, n=6, rows=None, keys=None):
    x = np.eye(n, 4, dtype=np.float16) + 0.1
    np.save(tmp_path / "embeddings.npy", x)
    keys = keys or [f"k{i}" for i in range(rows if rows is not None else n)]
    pq.write_table(pa.table({"key": keys, "label": pa.array(range(len(keys)), pa.int64())}),
                   tmp_path / "index.parquet")
    return tmp_path


def test_row_mismatch_names_both_files(tmp_path):
    with pytest.raises(DataError, match="5 index rows but embeddings.npy has 6 rows"):
        open_embeddings(_emb(tmp_path, rows=5))


def test_duplicate_keys_are_rejected_with_rows(tmp_path):
    with pytest.raises(DataError, match=r"key k1, rows \[1, 3\]"):
        open_embeddings(_emb(tmp_path, keys=["k0", "k1", "k2", "k1", "k4", "k5"]))


def test_missing_files_and_bad_arrays(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_embeddings(tmp_path)
    np.save(tmp_path / "embeddings.npy", np.zeros(3, np.float16))
    with pytest.raises(DataError, match="N x D"):
        open_embeddings(tmp_path)


def test_open_reads_labels_and_optional_columns(tmp_path):
    emb = open_embeddings(_emb(tmp_path))
    assert emb.n == 6 and emb.labels.tolist() == list(range(6))
    assert emb.column("resolution") is None and emb.run_info == {}


def test_normalise_rows_flags_nan_inf_and_zero():
    raw = np.array([[3, 4], [np.nan, 1], [0, 0], [np.inf, 0], [1e-9, 0]], dtype=np.float32)
    x, ok, finite = normalise_rows(raw)
    assert ok.tolist() == [True, False, False, False, False]
    assert finite.tolist() == [True, False, True, False, True]
    np.testing.assert_allclose(x[0], [0.6, 0.8])
    assert np.all(x[1:] == 0)


def test_chunks_cover_all_rows_and_read_rows_slices_or_gathers():
    v = np.arange(40, dtype=np.float32).reshape(10, 4) + 1
    starts = [c.start for c in iter_chunks(v, 4)]
    assert starts == [0, 4, 8]
    np.testing.assert_allclose(read_rows(v, np.array([2, 3, 4])), normalise_rows(v[2:5])[0])
    np.testing.assert_allclose(read_rows(v, np.array([1, 7])), normalise_rows(v[[1, 7]])[0])


def test_recorded_hash_must_match(tmp_path):
    folder = _emb(tmp_path)
    digest = file_sha256(folder / "embeddings.npy")
    (folder / "run.json").write_text(json.dumps({"embeddings_sha256": digest}))
    check_recorded_hash(open_embeddings(folder), digest)
    (folder / "run.json").write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(DataError, match="differs"):
        check_recorded_hash(open_embeddings(folder), digest)


def test_keys_by_row_range_read_from_the_file_equal_those_in_memory(tmp_path):
    from fr_data.folders.embeddings_folder import read_rows

    folder = _emb(tmp_path, n=7, keys=[f"k{i}" for i in range(7)])
    whole, without = open_embeddings(folder), open_embeddings(folder, keys=False)
    assert "key" not in without.index.column_names and without.labels.tolist() == list(range(7))
    at = np.array([6, 0, 3, 3])
    for emb in (whole, without):
        span, picked = emb.keys(2, 5, at)
        assert span.to_pylist() == ["k2", "k3", "k4"] and picked.to_pylist() == ["k6", "k0", "k3", "k3"]
    span, picked = read_rows(folder, "key", 1, 6, at, batch=2)  # spans and picks across record batches
    assert span.to_pylist() == [f"k{i}" for i in range(1, 6)] and picked.to_pylist() == ["k6", "k0", "k3", "k3"]
    assert whole.without_keys().keys(0, 2)[0].to_pylist() == ["k0", "k1"]


def test_float_columns_by_row_range_from_memory_or_the_file(tmp_path):
    folder = _emb(tmp_path, n=5)
    index = pq.read_table(folder / "index.parquet")
    pq.write_table(index.append_column("resolution", pa.array([0.5, None, 0.25, 1.0, 0.75], pa.float64())),
                   folder / "index.parquet")
    whole, lean = open_embeddings(folder), open_embeddings(folder, keys=False, floats=False)
    assert lean.index.column_names == ["label"] and "resolution" in lean.on_disk
    for emb in (whole, lean):
        got = emb.column("resolution", slice(1, 4))
        assert got.dtype == np.float32 and np.isnan(got[0]) and got[1:].tolist() == [0.25, 1.0]
        assert emb.column("flip_cos", slice(1, 4)) is None
    assert np.array_equal(whole.column("resolution"), lean.column("resolution"), equal_nan=True)
