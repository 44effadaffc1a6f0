"""Errors raised on bad input. Every message names the file and the record, key or row at fault."""

from __future__ import annotations

import os


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


class ConfigError(HardmineError, ValueError):
    """A config file is invalid: unknown key, wrong type or missing value."""
