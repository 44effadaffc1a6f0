"""fr_data.query.readonly's bounds: no temp folder to read, a memory limit, a time limit, one-line errors
that never echo a file, and every connection of the project locked (internal ones included)."""

from __future__ import annotations

import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.io.errors import ConfigError
from fr_data.query.readonly import INTERNAL, Limits, QueryError, QueryRefused, connect, duckdb_line
from fr_data.query.views import open_views, run_query
from fr_data.review.select import open_tables
from tests.fr_data.review.builders import make_review_run

SECRET = "s3cr3t-content-7731"
#: A query that cannot finish in any test's lifetime (10^14 rows to hash; no optimiser can prove the filter
#: false) in constant memory.
ENDLESS = "SELECT count(*) FROM range(10000000) a, range(10000000) b WHERE hash(a.range, b.range) = 0"
#: A recursive CTE whose string doubles each round: it explodes in memory.
EXPLODING_CTE = "WITH RECURSIVE t(s) AS (SELECT 'a' UNION ALL SELECT s || s FROM t) SELECT length(s) FROM t"


@pytest.fixture()
def cwd(tmp_path, monkeypatch):
    """A working folder with DuckDB's default temp folder ``.tmp`` holding a secret, and a table."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.txt").write_text(SECRET + "\n")
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    pq.write_table(pa.table({"key": ["a", "b"], "label": [0, 1]}), tmp_path / "samples.parquet")
    return tmp_path


def _fails(rv, sql: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        reader = run_query(rv, sql)
        if reader is not None:
            reader.read_all()
    message = str(info.value)
    assert "\n" not in message and SECRET not in message and "Stack Trace" not in message
    return info.value


@pytest.mark.parametrize("sql", [
    "SELECT content FROM read_text('.tmp/secret.txt')",
    "SELECT CAST(content AS INTEGER) FROM read_text('.tmp/secret.txt')",  # its error used to echo the file
    "SELECT * FROM read_csv('.tmp/secret.txt', header = false)",
    "SELECT * FROM glob('.tmp/*')",
    "SELECT content FROM read_text('secret.txt')",
    "SELECT * FROM samples WHERE key IN (SELECT content FROM read_text('.tmp/secret.txt'))",
])
def test_the_temp_folder_and_other_files_are_refused_without_echo(cwd, sql):
    rv = open_views({"samples": cwd / "samples.parquet"})
    assert isinstance(_fails(rv, sql), QueryRefused)
    assert rv.con.sql("SELECT current_setting('temp_directory')").fetchall() == [("",)]


def test_the_memory_limit_ends_a_huge_list_with_one_line(cwd):
    rv = open_views({"samples": cwd / "samples.parquet"}, Limits(memory_limit="100MB"))
    error = _fails(rv, "SELECT list(range) FROM range(1000000000)")
    assert str(error).startswith("query stopped: it needs more memory than the limit of 100MB")


def test_an_exploding_recursive_cte_is_one_line(cwd):
    rv = open_views({"samples": cwd / "samples.parquet"}, Limits(memory_limit="100MB"))
    assert "memory" in str(_fails(rv, EXPLODING_CTE))


def test_the_time_limit_interrupts_an_endless_query(cwd):
    rv = open_views({"samples": cwd / "samples.parquet"}, Limits(timeout_s=0.2))
    error = _fails(rv, ENDLESS)
    assert str(error).startswith("query stopped: it ran past the time limit of 0.2 s")
    assert run_query(rv, "SELECT count(*) AS n FROM samples").read_all().to_pylist() == [{"n": 2}]


def test_a_finished_query_is_not_interrupted_later(cwd):
    """The watchdog stops with the result: a query after the deadline of the previous one runs."""
    rv = open_views({"samples": cwd / "samples.parquet"}, Limits(timeout_s=0.05))
    assert run_query(rv, "SELECT 1 AS x").read_all().to_pylist() == [{"x": 1}]
    time.sleep(0.1)
    assert run_query(rv, "SELECT 2 AS x").read_all().to_pylist() == [{"x": 2}]


def test_bad_limits_are_config_errors():
    with pytest.raises(ConfigError, match="Memory must have a number"):
        connect((), Limits(memory_limit="lots"))
    with pytest.raises(ConfigError, match="time limit must be a positive"):
        connect((), Limits(timeout_s=0))


def test_internal_connections_are_locked_and_spill_into_a_private_folder(cwd):
    con = connect([cwd / "samples.parquet"], INTERNAL, spill=True)
    temp = con.sql("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert temp and ".tmp" not in temp and not temp.startswith(str(cwd))
    assert con.read_parquet(str(cwd / "samples.parquet")).fetchall() == [("a", 0), ("b", 1)]
    for sql in ("SELECT * FROM read_text('.tmp/secret.txt')", f"COPY (SELECT 1) TO '{cwd / 'out.csv'}'",
                "SET enable_external_access = true", "INSTALL httpfs"):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    assert not (cwd / "out.csv").exists()


def test_review_and_mining_connections_are_locked(cwd, tmp_path_factory):
    data = make_review_run(tmp_path_factory.mktemp("review"))
    tables = open_tables(data.run)
    assert tables.rows("SELECT count(*) AS n FROM samples") == [{"n": 36}]
    with pytest.raises(duckdb.PermissionException):
        tables.con.execute("SELECT * FROM read_text('.tmp/secret.txt')")


def test_duckdb_line_drops_a_backtrace_and_bounds_the_length():
    exc = duckdb.InternalException("INTERNAL Error: bad\n\nStack Trace:\n\n0 duckdb::Exception\n1 main")
    assert duckdb_line(exc) == "INTERNAL Error: bad"
    assert len(duckdb_line(duckdb.Error("x" * 5000))) == 300
