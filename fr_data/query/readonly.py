"""Locked DuckDB connections: views over named files, then no other file access, bounded memory and time.

Every DuckDB connection the project opens comes from :func:`connect` (user SQL of ``hardmine query``
and of a training selection, and the internal queries of mining, the review page and training alike).

User SQL (``hardmine query``, a training selection's ``query``/``where``, the composer's ``where``) runs on
a connection that this module locks once its views exist, with two independent guards:

1. DuckDB settings: ``allowed_paths`` lists exactly the files the views read, ``enable_external_access =
   false`` refuses every other file, extension installation and loading, and ``lock_configuration = true``
   makes every ``SET``/``RESET`` fail, so the first two cannot be undone.
2. A statement allow-list: DuckDB's ``allowed_paths`` lets a statement *write* the allowed files too
   (``COPY ... TO`` an allowed path, ``ATTACH`` one), so only ``SELECT`` statements (``WITH``, ``FROM``,
   ``VALUES``, ``DESCRIBE``, ``SUMMARIZE``, ``SHOW`` included) and ``EXPLAIN`` run at all.

Results leave only through the caller (``hardmine query --csv/--parquet``, written atomically).

Bounds (:class:`Limits`): DuckDB's ``memory_limit`` and ``threads``; DuckDB's temp folder (by default
``<cwd>/.tmp``, which DuckDB keeps readable under ``enable_external_access = false``) is switched off, so
a query that needs more memory than the limit ends in a one-line error instead of spilling; connections
for internal queries (``spill=True``) spill into a fresh private folder of their own, capped by
``max_temp_directory_size`` and removed with the connection. A time limit is a watchdog thread
(:class:`Deadline`) that calls ``interrupt()`` on the connection. Errors are one line, never more than
:data:`MAX_ERROR` characters, and a refused file is never read, so no error can echo its content.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from fr_data.io.errors import ConfigError, HardmineError, one_line

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
#: The longest error message passed on from DuckDB (characters): hints yes, dumps of data no.
MAX_ERROR = 300


@dataclass(frozen=True)
class Limits:
    """What one connection may use.

    Attributes:
        memory_limit: DuckDB's ``memory_limit`` (e.g. ``"2GB"``): a query needing more ends in an error.
        timeout_s: seconds one query (statements and reading the result) may run; None: no limit.
        threads: DuckDB worker threads.
        spill_limit: ``max_temp_directory_size`` of a spilling connection (``connect(spill=True)``).
    """

    memory_limit: str = "2GB"
    timeout_s: float | None = 300.0
    threads: int = 2
    spill_limit: str = "20GB"


#: The bounds of user SQL unless the caller says otherwise.
DEFAULT_LIMITS = Limits()
#: The bounds of internal queries (fixed SQL over data of any size): more memory, spilling, no time limit.
INTERNAL = Limits(memory_limit="4GB", timeout_s=None)


class QueryError(HardmineError, ValueError):
    """A query DuckDB rejects (syntax, unknown table or column, type error)."""


class QueryRefused(QueryError):
    """A query that needs more than reading the registered views (a write, a file, a setting)."""


def connect(readable: Iterable[str | os.PathLike] = (), limits: Limits = DEFAULT_LIMITS, *,
            spill: bool = False) -> duckdb.DuckDBPyConnection:
    """A new in-memory connection, already locked: it reads only the files in ``readable``.

    Views over those files, and in-memory tables (``con.register``), are added after this returns.
    With ``spill``, data beyond ``limits.memory_limit`` goes to a fresh private folder (removed when the
    connection is garbage-collected); without it there is no temp folder at all.

    Raises:
        ConfigError: a limit DuckDB does not accept (e.g. ``memory_limit = "lots"``).
    """
    if limits.timeout_s is not None and not limits.timeout_s > 0:
        raise ConfigError(f"query time limit must be a positive number of seconds, got {limits.timeout_s!r}")
    try:
        con = duckdb.connect(":memory:", config={"threads": int(limits.threads), "temp_directory": "",
                                                 "memory_limit": str(limits.memory_limit)})
    except duckdb.Error as exc:
        raise ConfigError(f"query limits {limits}: {duckdb_line(exc)}") from None
    if spill:
        folder = tempfile.mkdtemp(prefix="hardmine-duckdb-")
        weakref.finalize(con, shutil.rmtree, folder, True)
        con.execute("SET temp_directory = $d", {"d": folder})
        try:
            con.execute("SET max_temp_directory_size = $s", {"s": str(limits.spill_limit)})
        except duckdb.Error as exc:
            raise ConfigError(f"query limits {limits}: {duckdb_line(exc)}") from None
    lock(con, readable)
    return con


class Deadline:
    """A watchdog: ``interrupt()`` the connection once ``seconds`` have passed, unless cancelled first.

    Use as ``watch = Deadline(con, s).start()`` ... ``watch.cancel()``; ``fired`` says whether it struck.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float | None):
        self.seconds = seconds
        self.fired = False
        self._timer = None if seconds is None else threading.Timer(seconds, self._strike, (con,))
        if self._timer is not None:
            self._timer.daemon = True

    def _strike(self, con: duckdb.DuckDBPyConnection) -> None:
        self.fired = True
        con.interrupt()

    def start(self) -> Deadline:
        """Start the clock."""
        if self._timer is not None:
            self._timer.start()
        return self

    def cancel(self) -> None:
        """Stop the clock (the query ended)."""
        if self._timer is not None:
            self._timer.cancel()


def query_error(exc: BaseException, views: Iterable[str], limits: Limits, deadline: Deadline | None = None,
                what: str = "query failed") -> QueryError:
    """The one-line :class:`QueryError` for a DuckDB error of a query (raised by DuckDB, or by Arrow while
    a result streams, which carries DuckDB's message): a refusal, a limit that was hit, or DuckDB's own
    message (bounded, without data dumps), followed by the registered views."""
    views = list(views)
    text = str(exc)
    if deadline is not None and deadline.fired:
        return QueryError(f"query stopped: it ran past the time limit of {deadline.seconds:g} s "
                          "(raise the time limit, or narrow the query)")
    if isinstance(exc, duckdb.OutOfMemoryException) or text.startswith("Out of Memory Error"):
        return QueryError(f"query stopped: it needs more memory than the limit of {limits.memory_limit} "
                          "(raise the memory limit, or narrow the query)")
    if isinstance(exc, duckdb.InterruptException) or text.startswith("INTERRUPT Error"):
        return QueryError("query interrupted")
    refused = refusal(exc, views)
    if refused is not None:
        return refused
    names = ", ".join(views) or "none"
    return QueryError(f"{what}: {duckdb_line(exc)} (registered views: {names})")


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


def refusal(exc: BaseException, views: Iterable[str]) -> QueryRefused | None:
    """The :class:`QueryRefused` for a DuckDB permission or locked-setting error, else None."""
    text = duckdb_line(exc)
    if (isinstance(exc, duckdb.PermissionException) or text.startswith("Permission Error")
            or "configuration has been locked" in text):
        names = ", ".join(views) or "none"
        return QueryRefused(f"query refused: {text} (queries may read only the registered views: {names})")
    return None


def duckdb_line(exc: BaseException) -> str:
    """A DuckDB error on one line: its hint lines kept, its ``LINE n:`` and caret pointer lines dropped,
    nothing from a ``Stack Trace`` on (internal errors carry a C++ backtrace), at most ``MAX_ERROR``
    characters."""
    text = str(exc).split("Stack Trace", 1)[0]
    line = one_line(Exception(text), skip=lambda line: line.startswith("LINE ") or set(line) == {"^"})
    line = line if line != "Exception" else type(exc).__name__
    return line if len(line) <= MAX_ERROR else line[:MAX_ERROR - 3] + "..."


def _head(sql: str, width: int = 60) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[:width - 3] + "..."
