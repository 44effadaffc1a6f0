"""The ``.idx`` file (``key<TAB>offset`` lines): parsing, writing, and rebuilding it by scanning the ``.rec``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fr_data.formats.recordio.parts import (
    CFLAG_LAST,
    CFLAG_WHOLE,
    MAGIC,
    TruncatedError,
    no_last_part_error,
    padding,
    read_part_head,
    track_sequence,
    truncated_error,
)
from fr_data.io.atomic import atomic_path
from fr_data.io.errors import DataError


def load_idx(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Parse a ``.idx`` file into ``(keys, offsets)``, two int64 arrays in file order.

    Vectorised (pyarrow's multi-threaded CSV reader): tens of millions of lines load in seconds
    and the result is two flat arrays that forked DataLoader workers share copy-on-write.

    Raises:
        DataError: a line that is not ``<int key><TAB><int offset>``, naming the file and line.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if path.stat().st_size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["key", "offset"], block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter="\t"),
            convert_options=pacsv.ConvertOptions(column_types={"key": pa.int64(), "offset": pa.int64()}),
        )
    except pa.ArrowInvalid as exc:
        raise _idx_line_error(path, str(exc)) from None
    if table.num_rows == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if table.column("key").null_count or table.column("offset").null_count:
        raise _idx_line_error(path, "empty field")
    keys = np.require(table.column("key").to_numpy(), np.int64, ["C", "W"])
    offsets = np.require(table.column("offset").to_numpy(), np.int64, ["C", "W"])
    return keys, offsets


def _idx_line_error(path: Path, detail: str) -> DataError:
    """Find the first malformed line (slow path, only on error) and describe it."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            fields = line.strip().split(b"\t")
            if line.strip() and (len(fields) != 2 or not all(_is_int(x) for x in fields)):
                reason = f"expected '<key>\\t<offset>' integers, got {line[:80]!r}"
                return DataError(path, f"line {number}", reason)
    return DataError(path, "", f"cannot parse index: {detail}")


def _is_int(field: bytes) -> bool:
    try:
        int(field)
    except ValueError:
        return False
    return True


def write_idx(path: str | os.PathLike, keys: np.ndarray, offsets: np.ndarray) -> None:
    """Write ``key<TAB>offset`` lines atomically, in chunks (bounded memory)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as f:
        for start in range(0, len(keys), 1 << 20):
            k = keys[start : start + (1 << 20)].tolist()
            o = offsets[start : start + (1 << 20)].tolist()
            f.write("".join(f"{a}\t{b}\n" for a, b in zip(k, o)))


def scan_offsets(
    rec_path: str | os.PathLike, *, on_truncated: Callable[[DataError], None] | None = None
) -> np.ndarray:
    """Offsets of every logical record in ``rec_path``, found by walking part headers.

    Args:
        rec_path: the ``.rec`` file.
        on_truncated: if given, a file that ends inside a record is not an error: this callback
            receives the error and the offsets of the complete records before it are returned.

    Raises:
        DataError: wrong magic, a continuation part out of sequence, or a truncated file.
    """
    walk = walk_records(rec_path)
    if not walk.damaged:
        return walk.offsets
    first = walk.damaged[0]
    tail = len(walk.damaged) == 1 and first.end == walk.size and isinstance(first.error, TruncatedError)
    if on_truncated is None or not tail:
        raise first.error
    on_truncated(first.error)
    return walk.offsets


@dataclass(frozen=True)
class DamagedSpan:
    """Bytes ``[start, end)`` of a ``.rec`` that hold no complete record, and the first error found there."""

    start: int
    end: int
    error: DataError


@dataclass(frozen=True)
class Walk:
    """What walking a ``.rec`` found: complete records in file order and the damaged spans between them."""

    offsets: np.ndarray
    damaged: list[DamagedSpan]
    size: int


def walk_records(rec_path: str | os.PathLike) -> Walk:
    """Walk every record of ``rec_path``; after damage, resume at the next 4-byte-aligned magic word.

    dmlc's writer splits a payload at every aligned magic word, so in an undamaged file aligned magic
    words occur only at part headers: the walk resumes at the first one after the broken record's
    start (a continuation part found there is damage too, and the walk moves on again). Adjacent
    damaged spans are merged; a file that ends inside a record gives a span up to the end.
    """
    path = Path(rec_path)
    size = path.stat().st_size
    offsets: list[int] = []
    damaged: list[DamagedSpan] = []
    with open(path, "rb", buffering=1 << 20) as f:
        pos = 0
        while pos < size:
            try:
                end = record_end(f, path, pos, size)
            except DataError as exc:
                resume = _next_magic(f, pos + 4, size)
                if damaged and damaged[-1].end == pos:
                    damaged[-1] = DamagedSpan(damaged[-1].start, resume, damaged[-1].error)
                else:
                    damaged.append(DamagedSpan(pos, resume, exc))
                pos = resume
                continue
            offsets.append(pos)
            pos = end
    return Walk(np.asarray(offsets, dtype=np.int64), damaged, size)


def record_end(f: BinaryIO, path: Path, pos: int, size: int) -> int:
    """Where the complete record starting at ``pos`` ends (after its last part's padding).

    Raises:
        DataError: no record starts at ``pos`` (wrong magic, a continuation part), or it is cut short
            (:class:`TruncatedError`).
    """
    start = None
    while True:
        f.seek(pos)
        cflag, length = read_part_head(f.read(8), path, pos)
        start = track_sequence(cflag, start, pos, path)
        end = pos + 8 + length + padding(length)
        if end > size:
            raise truncated_error(path, pos, end, size)
        if cflag in (CFLAG_WHOLE, CFLAG_LAST):
            return end
        if end >= size:
            raise no_last_part_error(path, start)
        pos = end


def _next_magic(f: BinaryIO, pos: int, size: int, chunk: int = 1 << 20) -> int:
    """The first 4-byte-aligned offset at or after ``pos`` holding the magic word (``size`` if none)."""
    pos += (-pos) & 3
    while pos < size:
        f.seek(pos)
        data = f.read(min(chunk, size - pos))
        words = np.frombuffer(data[: len(data) - len(data) % 4], dtype="<u4")
        hits = np.flatnonzero(words == MAGIC)
        if hits.size:
            return pos + 4 * int(hits[0])
        pos += len(words) * 4 or size
    return size


def rebuild_idx(rec_path: str | os.PathLike, idx_path: str | os.PathLike) -> int:
    """Scan ``rec_path`` and write a fresh ``.idx`` (key = record position 0, 1, 2, ...).

    InsightFace and ``shuffle_rec.py`` files number their records 0..M-1 in file order, so the
    rebuilt index equals the original for them.

    Returns:
        The number of records indexed.
    """
    offsets = scan_offsets(rec_path)
    write_idx(idx_path, np.arange(len(offsets), dtype=np.int64), offsets)
    return len(offsets)


