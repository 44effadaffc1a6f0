"""The ``.idx`` file (``key<TAB>offset`` lines): parsing, writing, and rebuilding it by scanning the ``.rec``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fr_data.formats.recordio.parts import (
    CFLAG_LAST,
    CFLAG_WHOLE,
    padding,
    read_part_head,
    read_part_head_error,
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
    try:
        return _scan_offsets(Path(rec_path))
    except _Truncated as exc:
        if on_truncated is None:
            raise exc.error from None
        on_truncated(exc.error)
        return exc.offsets


class _Truncated(Exception):
    def __init__(self, error: DataError, offsets: np.ndarray):
        super().__init__(str(error))
        self.error, self.offsets = error, offsets


def _scan_offsets(rec_path: Path) -> np.ndarray:
    size = rec_path.stat().st_size
    offsets: list[int] = []
    with open(rec_path, "rb", buffering=1 << 20) as f:
        pos, start = 0, None
        while pos < size:
            head = f.read(8)
            if len(head) < 8:
                raise _Truncated(read_part_head_error(head, rec_path, pos), np.asarray(offsets, np.int64))
            cflag, length = read_part_head(head, rec_path, pos)
            start = track_sequence(cflag, start, pos, rec_path)
            end = pos + 8 + length + padding(length)
            if end > size:
                raise _Truncated(truncated_error(rec_path, pos, end, size), np.asarray(offsets, np.int64))
            if cflag in (CFLAG_WHOLE, CFLAG_LAST):
                offsets.append(start)
                start = None
            f.seek(end)
            pos = end
        if start is not None:
            error = DataError(rec_path, f"offset {start}", "split record has no last part (file truncated?)")
            raise _Truncated(error, np.asarray(offsets, np.int64))
    return np.asarray(offsets, dtype=np.int64)


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


