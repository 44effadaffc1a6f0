"""tools/query.py: the CLI end to end on a tiny hand-made run folder."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.cli import query as query
from tests.hardmine.cli.helpers import run  # noqa: F401 (the tiny run folder fixture)
from tests.repo import ROOT

REPO = ROOT


def test_prints_table_with_cut_rows(run, capsys):
    assert query.main([str(run), "SELECT key FROM samples WHERE split = 'hard' ORDER BY key",
                       "--max-rows", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[:4] == ["key", "---", "k1", "k2"]
    assert "3 rows, 2 shown, 1 cut" in out
    assert "pairs" in err  # the skipped view is reported


def test_sql_file_and_csv_output(run, tmp_path, capsys):
    sql = tmp_path / "merge.sql"
    sql.write_text("-- merge candidates\nSELECT label, n FROM classes WHERE merge_candidate;\n")
    out_csv = tmp_path / "out" / "merge.csv"
    assert query.main([str(run), "--file", str(sql), "--csv", str(out_csv)]) == 0
    assert out_csv.read_text().splitlines() == ['"label","n"', "1,3"]
    assert "wrote 1 rows" in capsys.readouterr().out


def test_parquet_output(run, tmp_path):
    target = tmp_path / "hard.parquet"
    assert query.main([str(run), "SELECT label, count(*) AS n FROM samples WHERE split = 'hard' "
                       "GROUP BY label ORDER BY label", "--parquet", str(target)]) == 0
    assert pq.read_table(target).to_pylist() == [{"label": 0, "n": 1}, {"label": 1, "n": 2}]


def test_bad_sql_exits_2(run, capsys):
    assert query.main([str(run), "SELECT nope FROM samples"]) == 2
    assert "nope" in capsys.readouterr().err
    assert query.main([str(run)]) == 2  # neither SQL nor --file
    with pytest.raises(SystemExit) as stop:  # refused while parsing the command line
        query.main([str(run.parent / "missing"), "SELECT 1"])
    assert stop.value.code == 2


def test_runs_as_a_script(run):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "query.py"), str(run),
                           "SELECT count(*) AS n FROM samples"], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].strip() == "5"


def _digests(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def guarded(run, tmp_path):
    """The run plus a shard manifest named in run.json and a file outside the run; digests of everything."""
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(5)], "shard": ["s0"] * 5}), tmp_path / "m.parquet")
    pq.write_table(pa.table({"key_a": ["k0"], "key_b": ["k1"], "cos": [0.5]}), run / "pairs.parquet")
    (run / "run.json").write_text(json.dumps({"samples_manifest": str(tmp_path / "m.parquet")}))
    (tmp_path / "outside.csv").write_text("secret\n42\n")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "outside.parquet")
    return run, _digests(tmp_path)


REFUSED = [
    "COPY (SELECT 1 AS x) TO '{run}/samples.parquet' (FORMAT parquet)",
    "COPY (SELECT 1 AS x) TO '{run}/samples.parquet' (FORMAT csv, USE_TMP_FILE false)",
    "COPY samples TO '{tmp}/copy.csv'",
    "SELECT 1; COPY (SELECT 1 AS x) TO '{run}/classes.parquet' (FORMAT parquet)",
    "ATTACH '{run}/new.db' AS d",
    "ATTACH '{run}/samples.parquet' AS d",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv('{tmp}/outside.csv')",
    "SELECT * FROM read_parquet('{tmp}/outside.parquet')",
    "SELECT * FROM read_text('{tmp}/outside.csv')",
    "SELECT * FROM glob('{tmp}/*')",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET lock_configuration = false",
    "SET allowed_directories = ['/']",
    "EXPORT DATABASE '{tmp}/export'",
    "CREATE TABLE t AS SELECT 1",
]


@pytest.mark.parametrize("template", REFUSED)
def test_writes_files_and_settings_are_refused_with_one_line(guarded, tmp_path, capsys, template):
    run, before = guarded
    sql = template.format(run=run, tmp=tmp_path)
    assert query.main([str(run), sql]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("hardmine query: error: query refused: ") and err.count("\n") == 1, err
    assert out == ""
    assert _digests(tmp_path) == before  # no file changed, none appeared


def test_the_output_file_may_not_be_a_file_the_views_read(guarded, capsys):
    run, before = guarded
    assert query.main([str(run), "SELECT 1 AS x", "--parquet", str(run / "samples.parquet")]) == 2
    assert "the output is the input" in capsys.readouterr().err
    assert _digests(run.parent) == before


def test_selects_over_every_view_still_work_when_locked(guarded, capsys):
    run, _ = guarded
    sql = ("SELECT s.split, count(*) AS n FROM samples s JOIN shard_samples m USING (key) "
           "JOIN classes c USING (label) GROUP BY s.split ORDER BY s.split")
    assert query.main([str(run), sql]) == 0
    assert capsys.readouterr().out.splitlines()[2:4] == ["easy  | 2", "hard  | 3"]


def test_review_view_when_review_csv_sits_in_the_run_folder(run, capsys):
    assert query.main([str(run), "SELECT count(*) AS n FROM review"]) == 0  # empty without review.csv
    assert capsys.readouterr().out.splitlines()[2].strip() == "0"
    (run / "review.csv").write_text("key,decision\nk1,drop\nk3,keep\nk0,merge:0:1\n")
    sql = ("SELECT r.key, r.action, r.kind, s.split FROM review r JOIN samples s USING (key) "
           "WHERE r.kind = 'sample' ORDER BY r.key")
    assert query.main([str(run), sql]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split() == ["k1", "|", "drop", "|", "sample", "|", "hard"]
    assert out[3].split() == ["k3", "|", "keep", "|", "sample", "|", "hard"] and "(2 rows)" in out[-1]
    (run / "review.csv").write_text("key,decision\nk1,remove\n")
    assert query.main([str(run), "SELECT * FROM review"]) == 2
    assert "review.csv (line 2)" in capsys.readouterr().err


def test_memory_and_time_limits_end_a_query_with_one_line(run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.txt").write_text("s3cr3t\n")
    endless = "SELECT count(*) FROM range(10000000) a, range(10000000) b WHERE hash(a.range, b.range) = 0"
    cases = [(["SELECT list(range) FROM range(1000000000)", "--memory-limit", "100MB"],
              "query stopped: it needs more memory than the limit of 100MB"),
             ([endless, "--timeout", "0.2"], "query stopped: it ran past the time limit of 0.2 s"),
             (["SELECT CAST(content AS INT) FROM read_text('.tmp/secret.txt')"], "query refused: Permission Error"),
             (["SELECT 1", "--memory-limit", "lots"], "Memory must have a number")]
    for argv, expected in cases:
        assert query.main([str(run), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("hardmine query: error: ") and expected in err and "s3cr3t" not in err
    args = query.build_parser().parse_args([str(run), "SELECT 1"])
    assert (args.memory_limit, args.timeout) == ("2GB", 300.0)


def test_selected_view_of_a_training_run(run, tmp_path, capsys):
    train = tmp_path / "train"
    train.mkdir()
    assert query.main([str(run), "SELECT 1 AS x", "--train", str(train)]) == 2
    assert "selected.parquet" in capsys.readouterr().err  # a folder without a selection
    pq.write_table(pa.table({"key": ["k1", "k3"], "label": pa.array([0, 1], pa.int64()),
                             "old_label": pa.array([0, 4], pa.int64())}), train / "selected.parquet")
    sql = ("SELECT count(*) AS trained, count(*) FILTER (WHERE s.split = 'hard') AS hard "
           "FROM selected t JOIN samples s USING (key)")
    assert query.main([str(run), sql, "--train", str(train)]) == 0
    assert capsys.readouterr().out.splitlines()[2].split() == ["2", "|", "2"]
