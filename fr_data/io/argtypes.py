"""Command-line parsing: :class:`CommandParser` and the ``type=`` functions that check a flag while it is read.

A value out of range becomes a one-line usage error naming the flag (exit 2) before any work starts:
``hardmine embed --batch-size 0`` prints ``hardmine embed: error: argument --batch-size: must be a positive
integer, got '0' (see --help)`` instead of failing later with a traceback. Every command's parser is a
:class:`CommandParser` and uses these types for its numbers and paths.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "CommandParser",
    "existing_file",
    "existing_folder",
    "existing_path",
    "finite_float",
    "fraction",
    "non_blank",
    "non_negative_int",
    "output_file",
    "output_folder",
    "parquet_file",
    "positive_float",
    "positive_int",
    "shipped_config",
]


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, ``PROG: error: MESSAGE (see --help)``, exit 2
    (argparse's default prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _integer(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (sizes, counts of workers, steps)."""
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, counts where 0 means none)."""
    return _integer(text, 0, "an integer >= 0")


def _real(text: str, what: str, accept: Callable[[float], bool]) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value) or not accept(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (rates, shares)."""
    return _real(text, "a number between 0 and 1", lambda v: 0.0 <= v <= 1.0)


def finite_float(text: str) -> float:
    """Any finite number (offsets such as a mean to subtract)."""
    return _real(text, "a finite number", lambda v: True)


def positive_float(text: str) -> float:
    """A finite number > 0 (limits in seconds)."""
    return _real(text, "a number > 0", lambda v: v > 0.0)


def existing_file(text: str) -> Path:
    """A path to an existing file."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file" if path.exists() else f"{text!r} does not exist")
    return path


def existing_folder(text: str) -> Path:
    """A path to an existing folder."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder" if path.exists() else f"{text!r} does not exist")
    return path


def existing_path(text: str) -> Path:
    """A path to an existing file or folder (e.g. a manifest given as the file or its folder)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    return path


def output_folder(text: str) -> Path:
    """A folder to create or reuse: refused when it names an existing file (``--out /etc/passwd``)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is an existing file, not a folder")
    return path


def output_file(text: str) -> Path:
    """A file to write: refused when it names an existing folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    return path


def parquet_file(text: str) -> Path:
    """An existing Parquet file (its footer is read, nothing more)."""
    path = existing_file(text)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise argparse.ArgumentTypeError(f"{text!r} is not a Parquet file ({first})") from None
    return path


def shipped_config(text: str) -> Path:
    """A config file, or the name of a shipped config (``mining_demo``): resolved as every config loader
    does (:func:`fr_data.io.shipped.resolve_config`)."""
    from fr_data.io.errors import ConfigError
    from fr_data.io.shipped import resolve_config

    try:
        return resolve_config(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def non_blank(text: str) -> str:
    """Text with at least one non-space character (SQL)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty")
    return text
