"""fr_data.query.views: DuckDB views over tiny hand-made run folders, checked against hand counts."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.io.errors import DataError
from fr_data.query.views import QueryError, format_table, head_rows, open_run, run_query, write_result


@pytest.fixture()
def run(tmp_path):
    """A run folder: 6 samples over 2 classes, 3 pairs, no classes.parquet; shard manifest beside it."""
    folder = tmp_path / "RUN"
    folder.mkdir()
    pq.write_table(pa.table({
        "key": ["k0", "k1", "k2", "k3", "k4", "k5"],
        "label": [0, 0, 0, 1, 1, 1],
        "split": ["easy", "hard", "hard", "medium", "hard", None],
        "suspect_mislabel": [False, True, False, False, True, False],
    }), folder / "samples.parquet")
    pq.write_table(pa.table({
        "key_a": ["k0", "k1", "k3"], "key_b": ["k2", "k4", "k5"],
        "cos": [0.8, 0.45, 0.2], "kind": ["easy_pos", "hard_neg", "hard_pos"],
    }), folder / "pairs.parquet")
    pq.write_table(pa.table({"key": ["k0", "k1", "k2", "k3", "k4", "k5"],
                             "shard": ["shard-000000.tar"] * 4 + ["shard-000001.tar"] * 2}),
                   tmp_path / "samples.parquet")
    (folder / "run.json").write_text(json.dumps({"samples_manifest": "../samples.parquet"}))
    return folder


def rows(rv, sql):
    return run_query(rv, sql).read_all().to_pylist()


def test_views_and_hand_counts(run):
    rv = open_run(run)
    assert set(rv.views) == {"samples", "pairs", "review", "shard_samples"}  # review: empty without review.csv
    assert any("classes" in n for n in rv.notes)
    got = rows(rv, "SELECT split, count(*) AS n FROM samples GROUP BY split ORDER BY split NULLS LAST")
    assert got == [{"split": "easy", "n": 1}, {"split": "hard", "n": 3},
                   {"split": "medium", "n": 1}, {"split": None, "n": 1}]
    got = rows(rv, "SELECT label, count(*) AS n FROM samples WHERE suspect_mislabel GROUP BY label ORDER BY label")
    assert got == [{"label": 0, "n": 1}, {"label": 1, "n": 1}]
    got = rows(rv, "SELECT m.shard, count(*) AS n FROM samples s JOIN shard_samples m USING (key) "
                   "WHERE s.split = 'hard' GROUP BY m.shard ORDER BY m.shard")
    assert got == [{"shard": "shard-000000.tar", "n": 2}, {"shard": "shard-000001.tar", "n": 1}]
    assert rows(rv, "SELECT count(*) AS n FROM pairs WHERE kind LIKE 'hard%'") == [{"n": 2}]


def test_explicit_shards_and_attributes(run, tmp_path):
    attrs = tmp_path / "attrs.parquet"
    pq.write_table(pa.table({"label": [0, 1], "race": ["A", "B"]}), attrs)
    rv = open_run(run, shards=tmp_path, attributes=attrs)  # a folder holding samples.parquet
    got = rows(rv, "SELECT a.race, count(*) AS n FROM samples s JOIN attributes a USING (label) "
                   "WHERE s.split = 'hard' GROUP BY a.race ORDER BY a.race")
    assert got == [{"race": "A", "n": 2}, {"race": "B", "n": 1}]
    with pytest.raises(DataError, match="shard manifest does not exist"):
        open_run(run, shards=tmp_path / "nope.parquet")


def test_missing_manifest_named_in_run_json_is_a_note(run):
    (run / "run.json").write_text(json.dumps({"samples_manifest": "/nowhere/samples.parquet"}))
    rv = open_run(run)
    assert "shard_samples" not in rv.views
    assert any("/nowhere/samples.parquet" in n for n in rv.notes)


def test_bad_sql_and_missing_run(run, tmp_path):
    rv = open_run(run)
    with pytest.raises(QueryError, match="registered views: samples, pairs, review, shard_samples"):
        run_query(rv, "SELECT * FROM classes")
    with pytest.raises(QueryError, match="syntax"):
        run_query(rv, "SELEKT 1")
    with pytest.raises(DataError, match="does not exist"):
        open_run(tmp_path / "missing")


def test_head_rows_counts_what_is_cut(run):
    rv = open_run(run)
    table, total = head_rows(run_query(rv, "SELECT * FROM range(300000) t(i)"), 4)
    assert table.num_rows == 4 and total == 300000
    assert table.column("i").to_pylist() == [0, 1, 2, 3]


def test_format_table_alignment_and_footer():
    table = pa.table({"name": ["a", "bbb"], "n": [5, 123], "cos": [0.5, None]})
    text = format_table(table, total=7)
    lines = text.splitlines()
    assert lines[0] == "name | n   | cos"
    assert lines[2] == "a    |   5 |  0.5"
    assert lines[3] == "bbb  | 123 | NULL"
    assert "7 rows, 2 shown, 5 cut" in lines[-1]
    assert format_table(table).splitlines()[-1] == "(2 rows)"


def test_write_csv_and_parquet(run, tmp_path):
    rv = open_run(run)
    sql = "SELECT key, label FROM samples WHERE split = 'hard' ORDER BY key"
    assert write_result(run_query(rv, sql), tmp_path / "o.csv", "csv") == 3
    assert (tmp_path / "o.csv").read_text().splitlines() == ['"key","label"', '"k1",0', '"k2",0', '"k4",1']
    assert write_result(run_query(rv, sql), tmp_path / "o.parquet", "parquet") == 3
    assert pq.read_table(tmp_path / "o.parquet").column("key").to_pylist() == ["k1", "k2", "k4"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
