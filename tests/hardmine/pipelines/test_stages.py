"""The one skip mechanism of the pipelines: a stage runs once, is skipped while its inputs and output stay,
and is redone from scratch when its inputs change or its output is gone."""

from __future__ import annotations

from hardmine.pipelines.stages import Folders, Stamper
from hardmine.pipelines.stamps import begin, read_stamp


def _stage(stamper: Stamper, calls: list[str], inputs: dict | None):
    where = stamper.folders.out / "made"

    def work() -> dict:
        calls.append("ran")
        where.mkdir(exist_ok=True)
        (where / "n.txt").write_text(str(len(calls)))
        return {"count": len(calls)}

    return stamper.run("make", where, inputs, work)


def test_a_stage_is_skipped_while_current_and_redone_when_inputs_or_output_change(tmp_path):
    stamper, calls = Stamper(Folders(tmp_path), log=lambda line: None), []
    first = _stage(stamper, calls, {"seed": 1})
    assert not first.skipped and first.info == {"count": 1}
    again = _stage(stamper, calls, {"seed": 1})
    assert again.skipped and again.info == {"count": 1} and calls == ["ran"]
    assert read_stamp(tmp_path / "stages" / "make.json") == {"inputs": {"seed": 1}, "done": True,
                                                             "info": {"count": 1}}
    (tmp_path / "made" / "stale.txt").write_text("from seed 1")
    changed = _stage(stamper, calls, {"seed": 2})
    assert not changed.skipped and not (tmp_path / "made" / "stale.txt").exists()  # redone from scratch
    (tmp_path / "made" / "n.txt").unlink()
    (tmp_path / "made").rmdir()
    gone = _stage(stamper, calls, {"seed": 2})
    assert not gone.skipped and gone.info == {"count": 3}


def test_a_started_stage_resumes_in_its_output_and_an_unstamped_stage_always_runs(tmp_path):
    stamper, calls = Stamper(Folders(tmp_path), log=lambda line: None), []
    (tmp_path / "stages").mkdir()
    (tmp_path / "made").mkdir()
    (tmp_path / "made" / "partial.txt").write_text("kept")
    begin(tmp_path / "stages" / "make.json", {"seed": 1})
    assert not _stage(stamper, calls, {"seed": 1}).skipped
    assert (tmp_path / "made" / "partial.txt").read_text() == "kept"  # resumed, not wiped
    assert [_stage(stamper, calls, None).skipped for _ in range(2)] == [False, False]
    assert len(calls) == 3


def test_a_timed_stamper_records_wall_and_cpu_seconds(tmp_path):
    stamper = Stamper(Folders(tmp_path), log=lambda line: None, timed=True)
    info = _stage(stamper, [], {"seed": 1}).info
    assert {"count", "seconds", "cpu_seconds", "load_average"} <= set(info)
