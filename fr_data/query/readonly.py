"""Read-only DuckDB connections for user SQL: views over named files, then no other file access.

User SQL (``hardmine query``, a training selection's ``query``/``where``, the composer's ``where``) runs on
a connection that this module locks once its views exist, with two independent guards:

1. DuckDB settings: ``allowed_paths`` lists exactly the files the views read, ``enable_external_access =
   false`` refuses every other file, extension installation and loading, and ``lock_configuration = true``
   makes every ``SET``/``RESET`` fail, so the first two cannot be undone.
2. A statement allow-list: DuckDB's ``allowed_paths`` lets a statement *write* the allowed files too
   (``COPY ... TO`` an allowed path, ``ATTACH`` one), so only ``SELECT`` statements (``WITH``, ``FROM``,
   ``VALUES``, ``DESCRIBE``, ``SUMMARIZE``, ``SHOW`` included) and ``EXPLAIN`` run at all.

Results leave only through the caller (``hardmine query --csv/--parquet``, written atomically).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import duckdb

from fr_data.io.errors import HardmineError, one_line

#: The statement kinds user SQL may contain.
ALLOWED_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})

#: Settings applied, in this order, to lock a connection (``allowed_paths`` comes first).
LOCK_SETTINGS = (
    ("autoinstall_known_extensions", "false"),
    ("autoload_known_extensions", "false"),
    ("enable_external_access", "false"),
    ("lock_configuration", "true"),
)

READ_ONLY_HINT = "queries are read-only: write results with --csv/--parquet"


class QueryError(HardmineError, ValueError):
    """A query DuckDB rejects (syntax, unknown table or column, type error)."""


class QueryRefused(QueryError):
    """A query that needs more than reading the registered views (a write, a file, a setting)."""


def lock(con: duckdb.DuckDBPyConnection, readable: Iterable[str | os.PathLike]) -> None:
    """Lock ``con``: only the files in ``readable`` stay readable, no setting can change any more."""
    paths = [str(Path(p).resolve()) for p in readable]
    con.execute("SET allowed_paths = $paths", {"paths": paths})
    for name, value in LOCK_SETTINGS:
        con.execute(f"SET {name} = {value}")


def check_read_only(sql: str) -> None:
    """Raise :class:`QueryRefused` unless every statement of ``sql`` is a ``SELECT`` or ``EXPLAIN``.

    Raises:
        QueryError: the SQL does not parse.
        QueryRefused: a statement of another kind (``COPY``, ``ATTACH``, ``INSTALL``, ``SET``, ...).
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {duckdb_line(exc)}") from None
    for statement in statements:
        if statement.type not in ALLOWED_STATEMENTS:
            kind = statement.type.name
            raise QueryRefused(f"query refused: {kind} statements are not allowed ({READ_ONLY_HINT}): "
                               f"{_head(statement.query)}")


def refusal(exc: duckdb.Error, views: Iterable[str]) -> QueryRefused | None:
    """The :class:`QueryRefused` for a DuckDB permission or locked-setting error, else None."""
    text = duckdb_line(exc)
    if isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in text:
        names = ", ".join(views) or "none"
        return QueryRefused(f"query refused: {text} (queries may read only the registered views: {names})")
    return None


def duckdb_line(exc: BaseException) -> str:
    """A DuckDB error on one line: its hint lines kept, its ``LINE n:`` and caret pointer lines dropped."""
    return one_line(exc, skip=lambda line: line.startswith("LINE ") or set(line) == {"^"})


def _head(sql: str, width: int = 60) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[:width - 3] + "..."
