"""hardmine.cli.report (tools/report.py): exit codes, what it prints, the folder it writes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hardmine.cli import report
from tests.repo import ROOT
from tests.fr_data.review.builders import make_review_run


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_review_run(tmp_path_factory.mktemp("cli"))


def test_writes_the_page_and_prints_its_path(data, tmp_path, capsys):
    out = tmp_path / "report"
    assert report.main([str(data.run), "--shards", str(data.shards), "--out", str(out), "--per-section", "2",
                        "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'index.html'}" in printed and "suspects 2/2" in printed and "quality 2/34" in printed
    assert (out / "index.html").is_file()


def test_bad_input_exits_2_with_a_one_line_error(data, tmp_path, capsys):
    assert report.main([str(tmp_path / "nope"), "--shards", str(data.shards), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hardmine report: error: ") and "mining run folder does not exist" in err[-1]
    (tmp_path / "empty").mkdir()  # a folder without shards (beside the output, not around it)
    assert report.main([str(data.run), "--shards", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "no shard" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_defaults_and_required_options(tmp_path):
    args = report.build_parser().parse_args([str(tmp_path), "--shards", str(tmp_path), "--out", "D"])
    assert args.per_section == 200 and args.attributes is None and not args.overwrite
    with pytest.raises(SystemExit):
        report.build_parser().parse_args([str(tmp_path), "--out", "D"])


def test_tools_report_runs_as_a_script(data, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "report.py"), str(data.run), "--shards",
                           str(data.shards), "--out", str(tmp_path / "page")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "report thumbnails" in proc.stderr  # per-stage progress lines
    assert (tmp_path / "page" / "index.html").is_file()


def test_decisions_prefill_the_page_and_a_bad_file_names_its_line(data, tmp_path, capsys):
    good = tmp_path / "review.csv"
    good.write_text("key,decision\n000000003,drop\n")  # an older two-column file
    out = tmp_path / "report"
    argv = [str(data.run), "--shards", str(data.shards), "--out", str(out), "--per-section", "2", "--quiet"]
    assert report.main([*argv, "--decisions", str(good)]) == 0
    page = (out / "index.html").read_text()
    assert '<script type="application/json" data-block="prefill">{"csv":"key,decision,section\\r\\n000000003,drop,\\r\\n"}' in page
    bad = tmp_path / "bad.csv"
    bad.write_text("key,decision,section\nk,keep,suspects\nk,boom,suspects\n")
    assert report.main([*argv, "--out", str(tmp_path / "r2"), "--decisions", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "line 3" in err[0] and not (tmp_path / "r2").exists()
