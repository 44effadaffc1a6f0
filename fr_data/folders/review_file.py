"""``review.csv``: a curator's decisions from the review page, read back by training and by DuckDB.

The review page (``hardmine report``) exports this file; training applies it with
``data.selection.review: review.csv``; ``hardmine query`` shows it as the ``review`` view when it sits
in the mining run folder.

Format: UTF-8 CSV (RFC 4180 quoting, so keys may hold commas or quotes), header ``key,decision,section``
(the page writes it) or ``key,decision`` (older files, read as rows without a section), either one
optionally followed by ``source_path`` (the image's file, as the shard manifest names it, for the
curator's eye and for ``hardmine export``; may be empty), one row per decided item:

================  ==========================================  ===========================================
``decision``      ``key``                                     meaning
================  ==========================================  ===========================================
``keep``          a sample key                                keep the sample even when the mining filter
                                                              of its section (``suspects``: the suspect
                                                              filter, ``duplicates``: the duplicate
                                                              filter; any other or no section: every
                                                              mining filter) would drop it
``drop``          a sample key                                remove the sample from training
``relabel:L``     a sample key                                train the sample under label ``L`` (the
                                                              suspected label a suspect card offers)
``merge:A:B``     a sample key of label ``A`` (the image the  labels ``A`` and ``B`` are one person: merge
                  page showed first for that label)           them, whatever ``merge_classes`` says
``keep:A:B``      as above                                    ``A`` and ``B`` are two people: never merge
                                                              them, even when ``merge_classes`` would
================  ==========================================  ===========================================

``section`` names the page section the decision was made in (``suspects``, ``duplicates``, ``merges``,
``quality``, ``overlap``, ...; empty: none). A row of the ``overlap`` section lifts no mining filter: its
``keep`` trains a class or leaked image that ``exclude_overlap`` would drop, and needs that option
(``fr_data.review.decisions``). Each section's decision is its own: one image shown as a suspect and as a
duplicate may be kept as the one and dropped as the other (a ``drop`` in any section drops it). ``A``,
``B`` and ``L`` are integer labels, ``A != B``. A (section, sample key) has at most one sample row, a key
at most one ``relabel`` row, a label pair (either order) at most one merge row; a key may have both a
sample row and a merge row (they decide different things). Blank lines are ignored. A quoted key may span
line breaks (at most ``MAX_LINES_PER_ROW`` lines); no cell may hold a NUL. Errors name the file and the
line (the header is line 1); a file is read line by line and reading stops at the first error.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from fr_data.io.atomic import atomic_write_text
from fr_data.io.errors import DataError

REVIEW_FILE = "review.csv"
HEADER = ("key", "decision", "section")
OLD_HEADER = ("key", "decision")
#: The headers of files naming each decided image's file (``source_path``, the shard manifest's column).
PATH_HEADER = (*HEADER, "source_path")
OLD_PATH_HEADER = (*OLD_HEADER, "source_path")
HEADERS = (HEADER, OLD_HEADER, PATH_HEADER, OLD_PATH_HEADER)
SAMPLE_ACTIONS = ("keep", "drop")
RELABEL = "relabel"
MERGE_ACTIONS = ("merge", "keep")

#: The parsed file, one row per decision (the ``review`` view of ``hardmine query``).
REVIEW_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("decision", pa.string(), nullable=False),  # as written in the file
    pa.field("kind", pa.string(), nullable=False),      # "sample" or "merge"
    pa.field("action", pa.string(), nullable=False),    # keep / drop / relabel (samples), merge / keep (pairs)
    pa.field("label", pa.int64()),                      # merge rows: A; relabel rows: the new label
    pa.field("other_label", pa.int64()),                # merge rows: B
    pa.field("line", pa.int64(), nullable=False),       # line of the file (header = 1)
    pa.field("section", pa.string()),                   # the page section it was made in (null: none)
    pa.field("source_path", pa.string()),               # the image's file when the file names it
])


@dataclass(frozen=True)
class Decision:
    """One row of a review file."""

    key: str
    kind: str
    action: str
    label: int | None = None
    other_label: int | None = None
    line: int = 0
    section: str = ""
    source_path: str | None = None

    @property
    def decision(self) -> str:
        """The ``decision`` cell as written in the file."""
        if self.action == RELABEL:
            return f"{RELABEL}:{int(self.label)}"
        if self.kind == "sample":
            return self.action
        return merge_decision(self.action, self.label, self.other_label)

    @property
    def pair(self) -> tuple[int, int]:
        """A merge row's labels, smaller first."""
        return (min(self.label, self.other_label), max(self.label, self.other_label))


def merge_decision(action: str, label: int, other_label: int) -> str:
    """The ``decision`` cell of a merge row, e.g. ``merge:12:40``."""
    return f"{action}:{int(label)}:{int(other_label)}"


@dataclass
class Review:
    """The decisions of a review file (``path`` names it in errors)."""

    path: Path
    decisions: list[Decision]

    def keys(self, action: str) -> list[str]:
        """Sample keys with this sample action (``keep``, ``drop`` or ``relabel``), each once, in file order."""
        return list(dict.fromkeys(d.key for d in self.samples(action)))

    def samples(self, action: str) -> list[Decision]:
        """The sample rows with this action."""
        return [d for d in self.decisions if d.kind == "sample" and d.action == action]

    def pairs(self, action: str) -> list[tuple[int, int]]:
        """Label pairs (smaller first) with this merge action (``merge`` or ``keep``)."""
        return [d.pair for d in self.decisions if d.kind == "merge" and d.action == action]

    def merges(self) -> list[Decision]:
        """The merge rows."""
        return [d for d in self.decisions if d.kind == "merge"]

    def counts(self) -> dict[str, int]:
        """Rows per decision kind: ``keep``, ``drop``, ``relabel``, ``merge``, ``separate`` (``keep:A:B``)."""
        return {"keep": len(self.samples("keep")), "drop": len(self.samples("drop")),
                "relabel": len(self.samples(RELABEL)), "merge": len(self.pairs("merge")),
                "separate": len(self.pairs("keep"))}

    def table(self) -> pa.Table:
        """The decisions as a ``REVIEW_SCHEMA`` table."""
        rows = [{"key": d.key, "decision": d.decision, "kind": d.kind, "action": d.action, "label": d.label,
                 "other_label": d.other_label, "line": d.line, "section": d.section or None,
                 "source_path": d.source_path} for d in self.decisions]
        return pa.Table.from_pylist(rows, schema=REVIEW_SCHEMA)


def _labels(cell: str, parts: list[str], line: int, path: Path) -> list[int]:
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise DataError(path, f"line {line}", f"decision {cell!r}: labels must be integers") from None


def parse_decision(key: str, cell: str, line: int, path: Path, section: str = "") -> Decision:
    """One row's decision.

    Raises:
        DataError: naming the file and line, for an empty key, a section that is not a plain name or a
            decision outside the format.
    """
    if not key:
        raise DataError(path, f"line {line}", "empty key")
    if section and not re.fullmatch(r"[a-z][a-z0-9_-]*", section):
        raise DataError(path, f"line {line}", f"section {section!r} is not a section name")
    if cell in SAMPLE_ACTIONS:
        return Decision(key, "sample", cell, line=line, section=section)
    parts = cell.split(":")
    if len(parts) == 2 and parts[0] == RELABEL:
        return Decision(key, "sample", RELABEL, _labels(cell, parts[1:], line, path)[0], line=line,
                        section=section)
    if len(parts) != 3 or parts[0] not in MERGE_ACTIONS:
        raise DataError(path, f"line {line}", f"decision {cell!r} is not keep, drop, relabel:L, merge:A:B or "
                                              "keep:A:B")
    label, other = _labels(cell, parts[1:], line, path)
    if label == other:
        raise DataError(path, f"line {line}", f"decision {cell!r} merges a label with itself")
    return Decision(key, "merge", parts[0], label, other, line, section)


def _ident(d: Decision) -> tuple[Any, ...]:
    """What one row decides (two rows deciding the same thing are an error)."""
    if d.kind == "merge":
        return ("merge", d.pair)
    if d.action == RELABEL:
        return ("relabel", d.key)
    return ("sample", d.section, d.key)


#: Lines one row may span (a quoted key may hold line breaks): an unterminated quote is reported after
#: this many lines rather than after reading the rest of the file.
MAX_LINES_PER_ROW = 16


class _Lines:
    """A review file's lines for ``csv.reader``, counted, decoded one at a time (a bad byte is named by
    its line), a NUL refused (it would not survive a round trip: numpy strips trailing NULs from keys)."""

    def __init__(self, source: Iterable[str | bytes], path: Path):
        self.source, self.path = source, path
        self.number = 0      # lines handed out so far
        self.row_start = 1   # the line the row being read starts on

    def __iter__(self) -> Iterator[str]:
        offset = 0
        for raw in self.source:
            self.number += 1
            if self.number - self.row_start >= MAX_LINES_PER_ROW:
                raise _unterminated(self.path, self.row_start)
            line = raw if isinstance(raw, str) else self._decode(raw, offset)
            offset += len(raw)
            if self.number == 1:
                line = line.removeprefix("\ufeff")
            if "\x00" in line:
                raise DataError(self.path, f"line {self.number}", "a NUL character; keys and decisions may not "
                                                                   "hold NUL")
            yield line

    def _decode(self, raw: bytes, offset: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(self.path, f"line {self.number}, byte {offset + exc.start}", "not UTF-8 text") from None


def _unterminated(path: Path, line: int) -> DataError:
    return DataError(path, f"line {line}", "unterminated quote: a quoted cell opened on this line never closes")


def _next_row(rows: Iterator[list[str]], lines: _Lines) -> list[str] | None:
    """The next CSV row (None at the end), its lines counted from ``lines.number + 1``."""
    lines.row_start = lines.number + 1
    try:
        return next(rows, None)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc) or "field larger than field limit" in str(exc):
            raise _unterminated(lines.path, lines.row_start) from None
        raise DataError(lines.path, f"line {lines.number}", f"not valid CSV: {exc}") from None


def parse_review_lines(lines: Iterable[str | bytes], path: str | os.PathLike = "<review>") -> Review:
    """Parse a review file given line by line (text, or UTF-8 bytes), stopping at the first error:
    nothing after the bad line is read.

    Raises:
        DataError: naming the file and line of a bad header, a row without two cells, a bad decision,
            a repeated key / label pair, an unterminated quote, a NUL or a byte that is not UTF-8.
    """
    path = Path(path)
    counted = _Lines(lines, path)
    rows = csv.reader(counted, strict=True)
    header = _next_row(rows, counted)
    names = tuple(c.strip() for c in header) if header is not None else None
    if names not in HEADERS:
        raise DataError(path, "line 1", "header must be 'key,decision,section' or 'key,decision' (either one "
                                        f"optionally followed by ',source_path'), got {header!r}")
    decisions, seen = [], {}
    while (row := _next_row(rows, counted)) is not None:
        line = counted.row_start
        if not row or row == [""]:
            continue
        if len(row) != len(names):
            raise DataError(path, f"line {line}", f"expected {len(names)} cells ({','.join(names)}), got {len(row)}")
        cells = dict(zip(names, row))
        d = parse_decision(row[0], row[1].strip(), line, path, cells.get("section", "").strip())
        if cells.get("source_path"):
            d = dataclasses.replace(d, source_path=cells["source_path"])
        ident = _ident(d)
        if ident in seen:
            what = " ".join(f"{v!r}" if isinstance(v, str) and v else str(v) for v in ident[1:] if v != "")
            raise DataError(path, f"line {line}", f"{ident[0]} {what} was already decided on line {seen[ident]}")
        seen[ident] = line
        decisions.append(d)
    return Review(path, decisions)


def parse_review(text: str, path: str | os.PathLike = "<review>") -> Review:
    """Parse review CSV text (see the module docstring and :func:`parse_review_lines`)."""
    return parse_review_lines(io.StringIO(text, newline=""), path)


def read_review(path: str | os.PathLike) -> Review:
    """Read and validate a review file, streaming: a bad line 2 is reported without reading further.

    Raises:
        DataError: the file is missing, not UTF-8, or breaks the format (file and line named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "", "review file not found")
    with path.open("rb") as handle:
        return parse_review_lines(handle, path)


def format_review(decisions: list[Decision]) -> str:
    """CSV text of ``decisions`` (header first, ``\\r\\n`` line ends as the page writes them); with a
    ``source_path`` column when any decision names its file."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    paths = any(d.source_path for d in decisions)
    writer.writerow(PATH_HEADER if paths else HEADER)
    for d in decisions:
        writer.writerow([d.key, d.decision, d.section, d.source_path or ""] if paths else [d.key, d.decision, d.section])
    return out.getvalue()


def write_review(path: str | os.PathLike, decisions: list[Decision]) -> None:
    """Write a review file atomically."""
    atomic_write_text(path, format_review(decisions))
