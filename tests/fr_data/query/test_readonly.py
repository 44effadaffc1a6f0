"""fr_data.query.readonly: the statement allow-list and the locked DuckDB settings, each on its own."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.query.readonly import QueryError, QueryRefused, check_read_only, duckdb_line, refusal
from fr_data.query.views import open_views


@pytest.fixture()
def views(tmp_path):
    pq.write_table(pa.table({"key": ["a", "b"], "label": [0, 1]}), tmp_path / "samples.parquet")
    (tmp_path / "outside.csv").write_text("x\n1\n")
    return open_views({"samples": tmp_path / "samples.parquet"})


@pytest.mark.parametrize("sql", [
    "SELECT 1", "WITH t AS (SELECT 1 AS x) SELECT * FROM t", "FROM samples", "VALUES (1)",
    "DESCRIBE samples", "SUMMARIZE samples", "SHOW TABLES", "EXPLAIN SELECT 1", "SELECT 1; SELECT 2",
])
def test_selects_pass_the_allow_list(sql):
    check_read_only(sql)


@pytest.mark.parametrize("sql, kind", [
    ("COPY (SELECT 1) TO 'x.parquet'", "COPY"), ("ATTACH 'x.db'", "ATTACH"), ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"), ("SET enable_external_access = true", "SET"), ("RESET lock_configuration", "SET"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"), ("EXPORT DATABASE 'x'", "EXPORT"), ("PRAGMA version", "PRAGMA"),
    ("CALL pragma_version()", "CALL"), ("SELECT 1; COPY (SELECT 1) TO 'x.csv'", "COPY"), ("USE memory", "SET"),
])
def test_other_statements_are_refused_by_kind(sql, kind):
    with pytest.raises(QueryRefused, match=f"^query refused: {kind} statements are not allowed") as info:
        check_read_only(sql)
    assert "\n" not in str(info.value)


def test_unparsable_sql_is_a_query_error_not_a_refusal():
    with pytest.raises(QueryError, match="syntax error") as info:
        check_read_only("SELEKT 1")
    assert not isinstance(info.value, QueryRefused)


def test_the_settings_hold_even_without_the_allow_list(views, tmp_path):
    """Statements sent to the connection directly (past check_read_only) still meet the locked settings."""
    con = views.con
    assert con.sql("SELECT count(*) FROM samples").fetchall() == [(2,)]
    for sql in ("SET enable_external_access = true", "RESET enable_external_access",
                "SET lock_configuration = false", "SET allowed_paths = ['/']",
                "SET allowed_directories = ['/']", "SET autoload_known_extensions = true"):
        with pytest.raises(duckdb.Error, match="configuration has been locked") as info:
            con.execute(sql)
        assert "locked" in str(refusal(info.value, views.views))
    for sql in (f"SELECT * FROM read_csv('{tmp_path / 'outside.csv'}')", "SELECT * FROM read_csv('/etc/passwd')",
                f"COPY (SELECT 1) TO '{tmp_path / 'new.csv'}'", f"ATTACH '{tmp_path / 'new.db'}'",
                "INSTALL httpfs", "LOAD httpfs"):
        with pytest.raises(duckdb.Error) as info:
            con.execute(sql)
        assert isinstance(refusal(info.value, views.views), QueryRefused), sql
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.csv", "samples.parquet"]


def test_duckdb_line_keeps_hints_and_drops_caret_lines():
    exc = duckdb.ParserException('Parser Error: syntax error at or near "x"\n\nLINE 1: x\n        ^')
    assert duckdb_line(exc) == 'Parser Error: syntax error at or near "x"'
    assert duckdb_line(ValueError("a\nb")) == "a; b"
