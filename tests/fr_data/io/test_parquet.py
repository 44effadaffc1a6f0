import pyarrow as pa
import pytest

from fr_data.io.errors import SchemaError
from fr_data.io.parquet import read_metadata, read_table, write_table

SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
    pa.field("score", pa.float32()),
])


def test_round_trip_casts_and_keeps_extra_columns(tmp_path):
    table = pa.table({"extra": [1, 2], "label": pa.array([3, 4], pa.int32()), "key": ["a", "b"],
                      "score": [0.5, None]})
    path = tmp_path / "t.parquet"
    write_table(table, path, SCHEMA, metadata={"run": {"n": 2}})
    back = read_table(path, SCHEMA)
    assert back.column_names == ["key", "label", "score", "extra"]
    assert back.schema.field("label").type == pa.int64()
    assert back.column("label").to_pylist() == [3, 4]
    assert read_metadata(path) == {"run": {"n": 2}}


def test_missing_column_names_file(tmp_path):
    path = tmp_path / "t.parquet"
    with pytest.raises(SchemaError, match="missing column.*label"):
        write_table(pa.table({"key": ["a"]}), path, SCHEMA)
    assert not path.exists()


def test_null_in_required_column_names_row(tmp_path):
    table = pa.table({"key": ["a", None, "c"], "label": [1, 2, 3], "score": [0.0, 0.0, 0.0]})
    with pytest.raises(SchemaError, match=r"column 'key', row 1"):
        write_table(table, tmp_path / "t.parquet", SCHEMA)


def test_uncastable_type_is_rejected(tmp_path):
    table = pa.table({"key": ["a"], "label": ["not-a-number"], "score": [1.0]})
    with pytest.raises(SchemaError, match="label"):
        write_table(table, tmp_path / "t.parquet", SCHEMA)


def test_read_validates_file(tmp_path):
    path = tmp_path / "bad.parquet"
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"key": ["a"]}), path)
    with pytest.raises(SchemaError, match=str(path.name)):
        read_table(path, SCHEMA)
    with pytest.raises(SchemaError, match="does not exist"):
        read_table(tmp_path / "nope.parquet", SCHEMA)
