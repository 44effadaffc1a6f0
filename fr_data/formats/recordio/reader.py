"""Random and batched reads of logical records by key from a memory-mapped ``.rec``."""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fr_data.formats.recordio.index import load_idx, scan_offsets
from fr_data.formats.recordio.parts import (
    CFLAG_LAST,
    CFLAG_WHOLE,
    LENGTH_MASK,
    MAGIC,
    MAGIC_BYTES,
    no_last_part_error,
    padding,
    read_part_head,
    track_sequence,
    truncated_error,
)
from fr_data.io.errors import DataError


def find_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(i, found)``: where each of ``keys`` is in the ascending ``sorted_keys`` (0 where absent)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    i = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    found = sorted_keys[i] == keys
    return np.where(found, i, 0), found


class RecordIOReader:
    """Random access to a ``.rec`` through its ``.idx``; safe to use in forked DataLoader workers.

    Args:
        rec_path: the ``.rec`` file.
        idx_path: its index. ``None`` means the sibling ``<name>.idx`` if it exists, otherwise the
            index is rebuilt in memory by scanning the ``.rec`` (see :attr:`index_origin`).
        index: ``(keys, offsets)`` arrays to use instead of reading an index file.

    Attributes:
        keys: int64 keys in index order.
        offsets: int64 byte offsets matching ``keys``.
        index_origin: ``"file"``, ``"scan"`` or ``"given"``.
    """

    def __init__(
        self,
        rec_path: str | os.PathLike,
        idx_path: str | os.PathLike | None = None,
        *,
        index: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.rec_path = Path(rec_path)
        self.size = self.rec_path.stat().st_size
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        if index is not None:
            keys, offsets, self.index_origin = index[0], index[1], "given"
        elif idx_path is not None or self.idx_path.exists():
            (keys, offsets), self.index_origin = load_idx(self.idx_path), "file"
        else:
            offsets = scan_offsets(self.rec_path)
            keys, self.index_origin = np.arange(len(offsets), dtype=np.int64), "scan"
        self.keys = np.ascontiguousarray(keys, dtype=np.int64)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self._build_lookup()
        self._check_offsets()
        self._fd: int | None = None
        self._pid: int | None = None
        self._map: mmap.mmap | None = None

    # -- index checks and key lookup --------------------------------------------------------------

    def _index_name(self) -> Path:
        return self.idx_path if self.index_origin == "file" else self.rec_path

    def _build_lookup(self) -> None:
        n = len(self.keys)
        first = int(self.keys[0]) if n else 0
        self._contiguous = bool(n == 0 or np.array_equal(self.keys, np.arange(first, first + n)))
        self._first_key = first
        if self._contiguous:
            self._order = self._sorted_keys = None
            return
        self._order = np.argsort(self.keys, kind="stable")
        self._sorted_keys = self.keys[self._order]
        dup = np.flatnonzero(self._sorted_keys[1:] == self._sorted_keys[:-1])
        if dup.size:
            key = int(self._sorted_keys[dup[0]])
            raise DataError(self._index_name(), f"key {key}", "key appears more than once in the index")

    def _check_offsets(self) -> None:
        bad = (self.offsets < 0) | (self.offsets % 4 != 0) | (self.offsets + 8 > self.size)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                self._index_name(), f"key {int(self.keys[i])}",
                f"offset {int(self.offsets[i])} is not a record start in {self.rec_path.name} "
                f"({self.size} bytes; records start at multiples of 4 before the end)",
            )

    def position(self, key: int) -> int:
        """Row of ``key`` in :attr:`keys`; ``KeyError`` if absent."""
        key = int(key)
        if self._contiguous:
            pos = key - self._first_key
            if 0 <= pos < len(self.keys):
                return pos
            raise KeyError(key)
        i = int(np.searchsorted(self._sorted_keys, key))
        if i < len(self._sorted_keys) and self._sorted_keys[i] == key:
            return int(self._order[i])
        raise KeyError(key)

    def positions(self, keys: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`position`: ``(rows, found)`` for int64 ``keys`` (rows of absent keys are 0)."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        if self._contiguous:
            rows = keys - self._first_key
            found = (rows >= 0) & (rows < len(self.keys))
            return np.where(found, rows, 0), found
        i, found = find_sorted(self._sorted_keys, keys)
        return np.where(found, self._order[i], 0), found

    def __contains__(self, key: int) -> bool:
        try:
            self.position(key)
        except KeyError:
            return False
        return True

    def __len__(self) -> int:
        return len(self.keys)

    # -- reading ---------------------------------------------------------------------------------

    def _handle(self) -> int:
        """The file descriptor, reopened after a fork (each process gets its own)."""
        pid = os.getpid()
        if self._fd is None or self._pid != pid:
            self._fd = os.open(self.rec_path, os.O_RDONLY)
            self._pid, self._map = pid, None
        return self._fd

    def _mapped(self) -> mmap.mmap | None:
        """A read-only map of the whole ``.rec`` made from :meth:`_handle` (None for an empty file).

        Like the descriptor it is made again after a fork. It covers the file as it is when first
        mapped; :meth:`read_many` reads anything past its end through :meth:`read_at`.
        """
        fd = self._handle()
        if self._map is None and os.fstat(fd).st_size > 0:
            self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        return self._map

    def read(self, key: int) -> bytes:
        """The whole logical record stored under ``key`` (split parts rejoined).

        Raises:
            KeyError: ``key`` is not in the index.
            DataError: the bytes at its offset are not a valid record.
        """
        return self.read_at(int(self.offsets[self.position(key)]))

    def read_at(self, offset: int) -> bytes:
        """The logical record starting at byte ``offset``."""
        fd, pos, start, pieces = self._handle(), int(offset), None, []
        while True:
            cflag, length = read_part_head(os.pread(fd, 8, pos), self.rec_path, pos)
            start = track_sequence(cflag, start, pos, self.rec_path)
            data = os.pread(fd, length, pos + 8) if length else b""
            if len(data) < length:
                raise truncated_error(self.rec_path, pos, pos + 8 + length, self.size)
            pieces.append(data)
            if cflag in (CFLAG_WHOLE, CFLAG_LAST):
                return pieces[0] if len(pieces) == 1 else MAGIC_BYTES.join(pieces)
            pos += 8 + length + padding(length)

    def read_many(
        self, keys: Sequence[int] | np.ndarray, *, views: bool = False
    ) -> list[bytes | memoryview | DataError | KeyError]:
        """:meth:`read` of every key in one call: per key the record, or the error ``read`` raises.

        Records are read in file order from a memory map. The part headers of all keys are checked
        at once; a record that is one whole part inside the file is sliced from the map, anything
        else (split records, bad magic, truncation) goes through :meth:`read_at`, so the bytes and
        the :class:`DataError` texts are exactly those of :meth:`read`. An absent key gives
        ``KeyError(key)``. Results are in input order; a key given twice is read twice.

        Like every reader here it expects the ``.rec`` not to change while open. A file that shrank
        before a call (before it was first mapped, or since) is read and reported through
        :meth:`read_at`; only a truncation racing a call itself can still fail on access.

        Args:
            keys: the keys to read.
            views: give the sliced records as memoryviews of the map instead of bytes (no copy;
                drop them before :meth:`close`, or the map stays open until they are gone).
        """
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        rows, found = self.positions(keys)
        out: list[bytes | memoryview | DataError | KeyError | None] = [None] * len(keys)
        for i in np.flatnonzero(~found).tolist():
            out[i] = KeyError(int(keys[i]))
        wanted = np.flatnonzero(found)
        offsets = self.offsets[rows[wanted]]
        order = np.argsort(offsets, kind="stable")
        for i, result in zip(wanted[order].tolist(), self._read_offsets(offsets[order], views)):
            out[i] = result
        return out

    def _read_offsets(self, offsets: np.ndarray, views: bool) -> list[bytes | memoryview | DataError]:
        """The record (or read's :class:`DataError`) at each offset; ascending offsets read best."""
        mapped = self._mapped()
        if mapped is not None and os.fstat(self._handle()).st_size < len(mapped):
            self._drop_map()  # the file shrank under the map: touching its lost pages would kill us
            mapped = None
        if mapped is None:
            return [self._read_or_error(offset) for offset in offsets.tolist()]
        starts, ends, plain = _whole_parts(mapped, offsets)
        view = memoryview(mapped) if views else mapped
        return [view[start:end] if ok else self._read_or_error(start - 8)
                for start, end, ok in zip(starts.tolist(), ends.tolist(), plain.tolist())]

    def _drop_map(self) -> None:
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a caller still holds a view: unmapped by GC
                self._map.close()
        self._map = None

    def _read_or_error(self, offset: int) -> bytes | DataError:
        try:
            return self.read_at(offset)
        except DataError as exc:
            return exc

    def scan(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(offset, record)`` for every logical record in file order (ignores the index)."""
        with open(self.rec_path, "rb", buffering=1 << 20) as f:
            yield from _iter_records(f, self.rec_path, self.size)

    def close(self) -> None:
        """Close the file descriptor and the map (if this process opened them)."""
        if self._fd is not None and self._pid == os.getpid():
            self._drop_map()
            os.close(self._fd)
        self._fd = self._pid = self._map = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fd"] = state["_pid"] = state["_map"] = None
        return state

    def __enter__(self) -> RecordIOReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _whole_parts(view: mmap.mmap, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, plain)``: payload span of the part at each offset, and whether it can be sliced.

    ``plain`` is True where that part is a whole record (right magic, ``cflag`` 0) lying entirely
    inside ``view``; the other offsets need :meth:`RecordIOReader.read_at` (and its error checks).
    Offsets are record starts of a checked index: non-negative multiples of 4.
    """
    size, starts = len(view), offsets + 8
    if size < 8:
        return starts, starts, np.zeros(len(offsets), dtype=bool)
    inside = starts <= size
    at = np.where(inside, offsets // 4, 0)
    words = np.frombuffer(view, dtype="<u4", count=size // 4)
    try:
        magic, lrec = words[at], words[at + 1]
    finally:
        del words  # the map cannot be closed while a numpy view of it exists
    ends = starts + (lrec & LENGTH_MASK)
    plain = inside & (magic == MAGIC) & ((lrec >> 29) == CFLAG_WHOLE) & (ends <= size)
    return starts, ends, plain


def _iter_records(f: BinaryIO, path: Path, size: int) -> Iterator[tuple[int, bytes]]:
    pos, start, pieces = 0, None, []
    while pos < size:
        cflag, length = read_part_head(f.read(8), path, pos)
        start = track_sequence(cflag, start, pos, path)
        data = f.read(length + padding(length))
        if len(data) < length + padding(length):
            raise truncated_error(path, pos, pos + 8 + length + padding(length), size)
        pieces.append(data[:length])
        pos += 8 + len(data)
        if cflag in (CFLAG_WHOLE, CFLAG_LAST):
            yield start, MAGIC_BYTES.join(pieces)
            start, pieces = None, []
    if start is not None:
        raise no_last_part_error(path, start)
