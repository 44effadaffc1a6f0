"""Stage stamps: a stage is skipped on a rerun when its outputs exist and its inputs are unchanged.

A stage's inputs are plain data (its config section, the digests of the files it reads). When a stage
starts it writes its stamp file (kept outside the stage's output folder, whose format belongs to the
library that writes it) with its inputs and ``done: false`` (:func:`begin`); when it finishes, the same
file with ``done: true`` and what it produced (:func:`write_stamp`), atomically. A rerun skips a
stage that is done with the current inputs, resumes one that started with them (training continues from
its latest checkpoint), and redoes one whose stamp is missing or names other inputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fr_data.io.atomic import atomic_write_text

__all__ = ["read_stamp", "is_current", "is_started", "begin", "write_stamp"]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def read_stamp(path: str | os.PathLike) -> dict[str, Any] | None:
    """The stamp at ``path``, or None when there is none or it is unreadable."""
    try:
        stamp = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def is_started(path: str | os.PathLike, inputs: dict[str, Any]) -> bool:
    """Whether the stamp at ``path`` marks a stage started (finished or not) from ``inputs``."""
    stamp = read_stamp(path)
    return stamp is not None and stamp.get("inputs") == _plain(inputs)


def is_current(path: str | os.PathLike, inputs: dict[str, Any]) -> bool:
    """Whether the stamp at ``path`` marks a stage finished from ``inputs``."""
    return is_started(path, inputs) and read_stamp(path).get("done") is True


def begin(path: str | os.PathLike, inputs: dict[str, Any]) -> None:
    """Mark a stage as started from ``inputs`` (not finished)."""
    atomic_write_text(path, json.dumps({"inputs": _plain(inputs), "done": False}, indent=2, sort_keys=True))


def write_stamp(path: str | os.PathLike, inputs: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """Mark a stage finished from ``inputs``; ``info`` (counts, seconds) is stored beside them."""
    stamp = {"inputs": _plain(inputs), "done": True, "info": _plain(info)}
    atomic_write_text(path, json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return stamp
