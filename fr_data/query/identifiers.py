"""SQL identifiers that come from data (column names of Parquet files): quoted by one helper, never pasted.

A column name of an attribute table or an extra column of a run's ``samples.parquet`` is data: a name
like ``x" FROM t; COPY ...`` must stay one identifier. :func:`quote_ident` wraps the name in double
quotes with every ``"`` doubled (the SQL standard's quoting, which DuckDB follows), so any printable
name, however odd (quotes, semicolons, spaces, unicode), names exactly its column. Names DuckDB or a
one-line error cannot carry are refused with a :class:`~fr_data.io.errors.DataError` naming the file:
empty names, names with control characters (NUL, newline, ...) and names longer than
:data:`MAX_IDENTIFIER`. Values from data are never pasted at all: they are bound as parameters
(``$name``) or registered as in-memory tables.
"""

from __future__ import annotations

import os
import unicodedata

from fr_data.io.errors import DataError

#: The longest column name accepted from data (characters).
MAX_IDENTIFIER = 256
#: Unicode categories refused in a name: control characters (``\\x00``, ``\\n``, ...) and lone surrogates.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})


def quote_ident(name: str, source: str | os.PathLike = "") -> str:
    """``name`` as a quoted SQL identifier (``"`` doubled inside ``"..."``).

    Args:
        name: the identifier (a column or table name read from data).
        source: the file the name comes from, for the error.

    Raises:
        DataError: an empty name, one with a control character, or one longer than ``MAX_IDENTIFIER``.
    """
    reason = identifier_problem(name)
    if reason is not None:
        raise DataError(source, f"column {short_name(name)}", f"{reason}; rename the column")
    return '"' + name.replace('"', '""') + '"'


def identifier_problem(name: object) -> str | None:
    """Why ``name`` cannot be a column name here, or None when it can."""
    if not isinstance(name, str) or not name:
        return "column name is empty or not text"
    if len(name) > MAX_IDENTIFIER:
        return f"column name is longer than {MAX_IDENTIFIER} characters"
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in name):
        return "column name holds a control character"
    return None


def short_name(name: object, width: int = 40) -> str:
    """A one-line, bounded rendering of a name for messages (control characters escaped)."""
    text = repr(name)  # escapes control characters and quotes
    return text if len(text) <= width else text[:width - 3] + "..."
