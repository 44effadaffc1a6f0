"""Seconds per stage of one overlap audit (``overlap.json`` ``seconds``), and a line per stage for a
watching user (the command prints them on a terminal: the searches of a large audit take minutes).

The stages, in the order an audit runs them: ``open``, ``centres``, ``embed`` (only when evaluation images
are embedded), ``identity_threshold``, ``duplicate_threshold``, ``identity_search``, ``leak_search``
(both once per evaluation set, added up), ``write``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["StageClock"]


@dataclass
class StageClock:
    """Wall and CPU seconds per stage (a stage entered twice, e.g. once per evaluation set, adds up).

    The CPU seconds (every thread of the process) say what a stage costs whatever else the machine runs:
    on a shared machine the wall time of a GEMM-bound stage grows with the load, its CPU time does not.

    Attributes:
        report: called with a line when a stage starts and ends (None: silent).
        stages: wall seconds per stage name, in the order first entered.
        cpu: CPU seconds per stage name.
    """

    report: Callable[[str], None] | None = None
    stages: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str, what: str = "") -> Iterator[None]:
        """Time the block as ``name``; ``what`` says what it does (for the report line)."""
        if self.report is not None:
            self.report(f"{name}{': ' + what if what else ''} ...")
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            self.stages[name] = round(self.stages.get(name, 0.0) + seconds, 3)
            self.cpu[name] = round(self.cpu.get(name, 0.0) + cpu, 3)
            if self.report is not None:
                self.report(f"{name}: {seconds:.1f} s (CPU {cpu:.1f} s)")

    @property
    def total(self) -> float:
        """Sum of the stages' wall seconds."""
        return round(sum(self.stages.values()), 3)

    def record(self) -> dict[str, object]:
        """``overlap.json`` ``seconds``: the total, and wall and CPU seconds per stage."""
        return {"total": self.total, "stages": dict(self.stages), "cpu": dict(self.cpu)}
