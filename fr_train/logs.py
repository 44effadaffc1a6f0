"""Training logs: JSONL metrics, optional TensorBoard, and a progress bar with img/s and ETA.

Only rank 0 logs; other ranks get sinks that do nothing. ``metrics.jsonl`` holds one JSON object per
record (``step``, ``epoch``, ``lr``, losses, ``img_s``, evaluation results, ...). When a run resumes
from step ``s``, records after ``s`` (written by the interrupted run past its last checkpoint) are
dropped first, so the file reads like one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from fr_data.folders.training_run_folder import metrics_path
from fr_data.io.atomic import atomic_write_text

__all__ = ["MetricsLog", "Progress", "ThroughputMeter", "truncate_metrics", "read_metrics"]


def _scalar(value: Any) -> float | int | str | None:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_metrics(path: str | os.PathLike, last_step: int) -> None:
    """Drop records with ``step > last_step`` from ``path`` (atomically; nothing if it does not exist)."""
    path = Path(path)
    if path.is_file():
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= last_step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


class MetricsLog:
    """Append metric records to ``folder/metrics.jsonl`` and, when available, TensorBoard.

    Args:
        folder: the run folder.
        enabled: False on ranks other than 0 (every call is then a no-op).
        tensorboard: also write TensorBoard events (silently off when ``tensorboard`` is not installed).
    """

    def __init__(self, folder: str | os.PathLike, *, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = metrics_path(folder)
        self._file = None
        self._writer = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a")
            self._writer = _tensorboard_writer(Path(folder) / "tensorboard") if tensorboard else None

    def write(self, step: int, values: Mapping[str, Any]) -> None:
        """One record ``{"step": step, **values}`` (tensors become numbers; NaN/inf become strings)."""
        if not self.enabled:
            return
        record = {"step": step, **{k: _scalar(v) for k, v in values.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))


class ThroughputMeter:
    """Images per second over the steps since the last :meth:`rate` call (wall clock)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._images = 0

    def add(self, images: int) -> None:
        self._images += images

    def rate(self) -> float:
        """img/s since the previous call (or construction), then restart counting."""
        now = time.perf_counter()
        rate = self._images / max(now - self._start, 1e-9)
        self._start, self._images = now, 0
        return rate


class Progress:
    """A tqdm bar over the run's steps (rank 0), showing loss and img/s; tqdm supplies the ETA.

    Args:
        total: steps of the whole run.
        initial: steps already done (when resuming).
        enabled: draw the bar.
        file: where to draw it (default: stderr).
    """

    def __init__(self, total: int, initial: int = 0, *, enabled: bool = True, file: IO[str] | None = None):
        self._bar = tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True,
                         smoothing=0.1, file=file)

    def update(self, steps: int = 1, **postfix: float) -> None:
        """Advance by ``steps`` and show ``postfix`` values (e.g. ``loss``, ``img_s``)."""
        if postfix:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(steps)

    def update_to(self, step: int, **postfix: float) -> None:
        """Move the bar to ``step`` (steps done in all)."""
        self.update(step - self._bar.n, **postfix)

    def close(self) -> None:
        self._bar.close()
