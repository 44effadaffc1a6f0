"""Errors raised on bad input. Every message names the file and the record, key or row at fault."""

from __future__ import annotations

import os
from collections.abc import Callable


class HardmineError(Exception):
    """Base class of every error hardmine raises on purpose."""


class DataError(HardmineError, ValueError):
    """Bad input data: names the file and where in it (offset, key, row) the problem is.

    Args:
        path: the file (or folder) that holds the bad data.
        where: a locator inside it, e.g. ``"offset 1024"``, ``"key 17"`` or ``"row 3"``; may be empty.
        reason: what is wrong, in words.
    """

    def __init__(self, path: str | os.PathLike, where: str, reason: str):
        self.path = os.fspath(path)
        self.where = where
        self.reason = reason
        loc = f"{self.path} ({where})" if where else self.path
        super().__init__(f"{loc}: {reason}")


class SchemaError(DataError):
    """A table does not match its declared pyarrow schema."""


class WriteError(HardmineError, OSError):
    """Writing an output failed (disk full, no permission...): names the file being written.

    It is an ``OSError`` too (with the cause's ``errno``), so code that handles OSError still does.
    """

    def __init__(self, path: str | os.PathLike, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.path = os.fspath(path)
        self.filename = self.path

    def __str__(self) -> str:
        return f"{self.path}: cannot write: {self.strerror} (errno {self.errno})"

    def __reduce__(self):
        return _write_error, (self.path, self.errno, self.strerror)


def _write_error(path: str, errno: int | None, strerror: str | None) -> WriteError:
    return WriteError(path, OSError(errno, strerror))


class ConfigError(HardmineError, ValueError):
    """A config file is invalid: unknown key, wrong type or missing value."""


def one_line(exc: BaseException, skip: Callable[[str], bool] = lambda line: False) -> str:
    """An exception's message on one line: its non-empty lines (less those ``skip`` drops) joined with
    "; " (Arrow and DuckDB append schemas, hints and pointers on later lines)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    return "; ".join(line for line in lines if line and not skip(line)) or type(exc).__name__
