"""The stage clock of an overlap audit: seconds add up per stage, a line per start and end, and a stage
that fails is still recorded."""

from __future__ import annotations

import pytest

from fr_data.overlap.timing import StageClock


def test_stages_add_up_and_report_lines():
    lines: list[str] = []
    clock = StageClock(report=lines.append)
    with clock.stage("leak_search", "set a"):
        pass
    with clock.stage("write"):
        pass
    with clock.stage("leak_search", "set b"):
        pass
    assert list(clock.stages) == ["leak_search", "write"]  # first-entered order; the second entry adds up
    assert set(clock.cpu) == {"leak_search", "write"}
    assert lines[0] == "leak_search: set a ..." and lines[2] == "write ..." and lines[4] == "leak_search: set b ..."
    assert all(line.endswith(" s)") and "CPU" in line for line in lines[1::2])
    assert clock.total == pytest.approx(sum(clock.stages.values()))
    assert clock.record() == {"total": clock.total, "stages": clock.stages, "cpu": clock.cpu}


def test_a_failing_stage_is_recorded_and_silent_without_report():
    clock = StageClock()
    with pytest.raises(RuntimeError), clock.stage("centres"):
        raise RuntimeError("boom")
    assert "centres" in clock.stages and clock.stages["centres"] >= 0.0
