"""tools/query.py: the CLI end to end on a tiny hand-made run folder."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.cli import query as query
from tests.repo import ROOT

REPO = ROOT


@pytest.fixture()
def run(tmp_path):
    folder = tmp_path / "RUN"
    folder.mkdir()
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(5)], "label": [0, 0, 1, 1, 1],
                             "split": ["easy", "hard", "hard", "hard", "easy"]}), folder / "samples.parquet")
    pq.write_table(pa.table({"label": [0, 1], "n": [2, 3], "merge_candidate": [False, True]}),
                   folder / "classes.parquet")
    return folder


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
    assert query.main([str(run.parent / "missing"), "SELECT 1"]) == 2


def test_runs_as_a_script(run):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "query.py"), str(run),
                           "SELECT count(*) AS n FROM samples"], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].strip() == "5"


def test_review_view_when_review_csv_sits_in_the_run_folder(run, capsys):
    assert query.main([str(run), "SELECT count(*) AS n FROM review"]) == 2
    assert "review" in capsys.readouterr().err  # no such view yet
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
