"""Seconds per stage of one overlap audit (``overlap.json`` ``seconds.stages``), and a line per stage for
a watching user (the command prints them on a terminal: the searches of a large audit take minutes)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["STAGES", "StageClock"]

#: the stages in the order an audit runs them (``embed`` only when evaluation images are embedded)
STAGES = ("open", "centres", "embed", "identity_threshold", "duplicate_threshold", "identity_search",
          "leak_search", "write")


@dataclass
class StageClock:
    """Wall seconds per stage (a stage entered twice, e.g. once per evaluation set, adds up).

    Attributes:
        report: called with a line when a stage starts and ends (None: silent).
        stages: seconds per stage name, in the order first entered.
    """

    report: Callable[[str], None] | None = None
    stages: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str, what: str = "") -> Iterator[None]:
        """Time the block as ``name``; ``what`` says what it does (for the report line)."""
        if self.report is not None:
            self.report(f"{name}{': ' + what if what else ''} ...")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - t0
            self.stages[name] = round(self.stages.get(name, 0.0) + seconds, 3)
            if self.report is not None:
                self.report(f"{name}: {seconds:.1f} s")

    @property
    def total(self) -> float:
        """Sum of the stages' seconds."""
        return round(sum(self.stages.values()), 3)
