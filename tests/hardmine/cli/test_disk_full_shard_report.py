"""A full disk in ``hardmine shard`` and ``hardmine report`` is one error line naming the file, exit 2.

The disk is made full as in ``test_crash_safety.py`` (an ENOSPC injected at each atomic write in turn), and,
for the review page, also while writing a thumbnail and a chart (plain writes inside its staging folder).
A shard run keeps what it finished (it resumes); a report leaves no folder and no staging folder.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from hardmine.cli import report, shard
from tests.fr_data.review.builders import make_review_run
from tests.hardmine.cli.helpers import assert_nothing_left, count_writes, full_disk_at
from tests.hardmine.cli.helpers import make_rec


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def one_line_naming(err: str, path: Path) -> None:
    line = err.strip()
    assert line.count("\n") == 0 and str(path) in line, err
    assert line.startswith(("hardmine shard: error: ", "hardmine report: error: ")), err
    assert "No space left on device" in line, err


def test_shard_disk_full_at_each_write(tmp_path, capsys):
    make_rec(tmp_path / "rec", classes=2, per_class=3)

    def argv(out: Path) -> list[str]:
        return ["--src", str(tmp_path / "rec"), "--out", str(out), "--per-shard", "3", "--workers", "1"]

    with pytest.MonkeyPatch.context() as mp:
        written = count_writes(mp, lambda: shard.main(argv(tmp_path / "clean")))
    assert {p.name for p in written} >= {"shard-000000.tar", "shards.json", "samples.parquet"}
    capsys.readouterr()
    for call, target in enumerate(written, start=1):
        out = tmp_path / f"out{call}"
        with pytest.MonkeyPatch.context() as mp:
            full_disk_at(mp, call)
            assert shard.main(argv(out)) == 2
        one_line_naming(capsys.readouterr().err, out / target.relative_to(tmp_path / "clean"))
        assert list(out.rglob("*.tmp-*")) == []
        assert shard.main(argv(out)) == 0  # the rerun resumes and completes
        capsys.readouterr()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_review_run(tmp_path_factory.mktemp("full"))


def report_argv(data, out: Path) -> list[str]:
    return [str(data.run), "--shards", str(data.shards), "--out", str(out), "--per-section", "2", "--quiet"]


def test_report_disk_full_at_each_atomic_write(data, tmp_path, monkeypatch, capsys):
    written = count_writes(monkeypatch, lambda: report.main(report_argv(data, tmp_path / "clean" / "r")))
    staged = tmp_path / "clean" / ".r.partial"
    written = [p for p in written if staged in p.parents]  # the shard index cache is optional: not these
    assert {"index.html", "report.json"} <= {p.name for p in written}, written
    capsys.readouterr()
    for call, target in enumerate(written, start=1):
        full_disk_at(monkeypatch, call)
        assert report.main(report_argv(data, tmp_path / "r")) == 2
        assert_nothing_left(tmp_path, "r", capsys.readouterr().err, tmp_path / ".r.partial" / target.relative_to(staged))


@pytest.mark.parametrize("where", ["thumbnail", "chart"])
def test_report_disk_full_while_writing_a_thumbnail_or_a_chart(data, tmp_path, monkeypatch, capsys, where):
    if where == "thumbnail":
        real = Path.write_bytes
        monkeypatch.setattr(Path, "write_bytes",
                            lambda self, b: no_space() if self.suffix == ".jpg" else real(self, b))
    else:
        monkeypatch.setattr(Figure, "savefig", no_space)
    assert report.main(report_argv(data, tmp_path / "r")) == 2
    err = capsys.readouterr().err
    staged = tmp_path / ".r.partial"
    one_line_naming(err, staged / ("img" if where == "thumbnail" else "figures"))
    assert_nothing_left(tmp_path, "r", err, staged)
