"""MXNet / InsightFace RecordIO (``.rec`` + ``.idx``) read and written without MXNet.

Container (dmlc-core ``recordio.h``): every physical part is ``magic`` (uint32 ``0xced7230a``,
little-endian), a length word ``lrec`` whose top 3 bits are the continuation flag ``cflag`` and whose
low 29 bits are the part length, the payload, then zero padding to a 4-byte boundary. dmlc's writer
splits a payload at every 4-byte-aligned occurrence of the magic word: the magic itself is dropped,
the pieces are written with ``cflag`` 1 (first), 2 (middle) and 3 (last), and the reader puts the
magic back between the pieces. An unsplit record has ``cflag`` 0.

Index (MXNet ``MXIndexedRecordIO``): one ``key<TAB>offset`` line per logical record, ``offset`` being
the byte position of the record's first magic word. :func:`load_idx` parses it into two int64 numpy
arrays (no per-worker Python dict); :class:`RecordIOReader` looks keys up with direct indexing when
the keys are contiguous and with ``searchsorted`` otherwise.

Image payloads (MXNet ``recordio.pack``): a 24-byte ``IRHeader`` (``<IfQQ``: flag, label, id, id2);
``flag > 0`` means ``flag`` float32 labels follow the header, before the image bytes.

InsightFace layout (``write_insightface``): key 0 is a header record (flag 2, label ``[N+1, N+1+C]``,
no image); keys ``1..N`` are images grouped by class; keys ``N+1..N+C`` hold one ``[start, end)``
image-key range per class. The headerless layout (e.g. files re-shuffled for DALI) has only images.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fr_data.io.atomic import atomic_path, atomic_write_text
from fr_data.io.errors import DataError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
MAX_RECORD_BYTES = (1 << 29) - 1  # dmlc: CHECK(size < (1 << 29))
LENGTH_MASK = (1 << 29) - 1

CFLAG_WHOLE = 0
CFLAG_FIRST = 1
CFLAG_MIDDLE = 2
CFLAG_LAST = 3

IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24

_PART_HEAD = struct.Struct("<II")
_IR = struct.Struct(IR_FORMAT)
_F32 = struct.Struct("<f")


# --------------------------------------------------------------------------------------------------
# Image record payloads (IRHeader)


@dataclass(frozen=True)
class IRHeader:
    """Header of an MXNet image record.

    Attributes:
        flag: 0 for a scalar label, else the number of float32 labels stored before the image.
        label: the scalar label (flag 0) or a float32 vector of ``flag`` labels.
        id: first 64-bit id field (free use; InsightFace leaves it 0).
        id2: second 64-bit id field.
    """

    flag: int
    label: float | np.ndarray
    id: int
    id2: int

    @property
    def class_label(self) -> float:
        """The class as a float: the scalar label, or the first element of a vector label."""
        if self.flag > 0:
            return float(np.asarray(self.label)[0])
        return float(self.label)


def pack_image_record(
    label: float | int | Sequence[float] | np.ndarray, image: bytes, id: int = 0, id2: int = 0
) -> bytes:
    """Build an image-record payload the way ``mxnet.recordio.pack`` does.

    Args:
        label: a number (stored in the header, ``flag`` 0) or a non-empty sequence of numbers
            (``flag = len``, stored as float32 right after the header).
        image: encoded image bytes, stored verbatim.
        id: first id field.
        id2: second id field.

    Returns:
        The payload bytes (header, optional labels, image).
    """
    if np.ndim(label) == 0:
        return _IR.pack(0, float(label), id, id2) + bytes(image)
    vector = np.asarray(label, dtype="<f4").ravel()
    if vector.size == 0:
        raise ValueError("a vector label needs at least one value")
    return _IR.pack(vector.size, 0.0, id, id2) + vector.tobytes() + bytes(image)


def _image_record_fields(payload: bytes | memoryview) -> tuple[int, float, int, int, int]:
    """``(flag, scalar label, id, id2, image start)`` of an image-record payload.

    Raises:
        ValueError: the payload is shorter than its header and labels say it must be.
    """
    if len(payload) < IR_SIZE:
        raise ValueError(f"image record of {len(payload)} bytes is shorter than the {IR_SIZE}-byte header")
    flag, label, id_, id2 = _IR.unpack_from(payload, 0)
    end = IR_SIZE + 4 * flag
    if end > len(payload):
        raise ValueError(f"header announces {flag} float32 labels but the record has {len(payload)} bytes")
    return flag, label, id_, id2, end


def unpack_image_record(payload: bytes | memoryview) -> tuple[IRHeader, bytes]:
    """Split an image-record payload into its header and the image bytes.

    Raises:
        ValueError: the payload is shorter than its header and labels say it must be.
    """
    flag, label, id_, id2, end = _image_record_fields(payload)
    if flag == 0:
        return IRHeader(0, label, id_, id2), bytes(payload[IR_SIZE:])
    vector = np.frombuffer(payload, dtype="<f4", count=flag, offset=IR_SIZE).copy()
    return IRHeader(flag, vector, id_, id2), bytes(payload[end:])


def unpack_class_label(payload: bytes | memoryview) -> tuple[float, bytes]:
    """``(header.class_label, image)`` of :func:`unpack_image_record`, without building the header.

    Raises:
        ValueError: as :func:`unpack_image_record`.
    """
    flag, label, _, _, end = _image_record_fields(payload)
    if flag:
        label = _F32.unpack_from(payload, IR_SIZE)[0]
    return label, bytes(payload[end:])


# --------------------------------------------------------------------------------------------------
# Container parts


def _encode_lrec(cflag: int, length: int) -> int:
    return (cflag << 29) | length


def _padding(length: int) -> int:
    return (-length) & 3


def split_payload(payload: bytes) -> list[bytes]:
    """Cut ``payload`` at every 4-byte-aligned magic word, dropping the magic (dmlc ``WriteRecord``).

    Returns:
        The pieces; one piece means the record is written unsplit.
    """
    view = memoryview(payload)
    aligned = len(payload) - (len(payload) & 3)
    words = np.frombuffer(view[:aligned], dtype="<u4")
    hits = np.flatnonzero(words == MAGIC) * 4
    pieces, start = [], 0
    for pos in hits.tolist():
        pieces.append(bytes(view[start:pos]))
        start = pos + 4
    pieces.append(bytes(view[start:]))
    return pieces


def encode_record(payload: bytes) -> bytes:
    """The on-disk bytes of one logical record: its part(s), each padded to 4 bytes."""
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"record of {len(payload)} bytes: RecordIO records must be < 2^29 bytes")
    pieces = split_payload(payload)
    out = io.BytesIO()
    for i, piece in enumerate(pieces):
        if len(pieces) == 1:
            cflag = CFLAG_WHOLE
        elif i == 0:
            cflag = CFLAG_FIRST
        else:
            cflag = CFLAG_LAST if i == len(pieces) - 1 else CFLAG_MIDDLE
        out.write(_PART_HEAD.pack(MAGIC, _encode_lrec(cflag, len(piece))))
        out.write(piece)
        out.write(b"\0" * _padding(len(piece)))
    return out.getvalue()


# --------------------------------------------------------------------------------------------------
# Writer


class RecordIOWriter:
    """Append records to a ``.rec`` and their offsets to a ``.idx``, MXNet-compatibly.

    Both files are written under temporary names and renamed onto ``rec_path`` / ``idx_path`` only
    by :meth:`close` (or a clean exit of the ``with`` block); an exception inside the block removes
    them and leaves any existing files untouched.
    """

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path)
        self._stack = contextlib.ExitStack()
        rec_tmp = self._stack.enter_context(atomic_path(self.rec_path))
        idx_tmp = self._stack.enter_context(atomic_path(self.idx_path))
        self._rec = self._stack.enter_context(open(rec_tmp, "wb"))
        self._idx = self._stack.enter_context(open(idx_tmp, "w", encoding="ascii", newline="\n"))
        self._offset = 0
        self.count = 0

    def write(self, key: int, payload: bytes) -> int:
        """Append one logical record under ``key``; return the byte offset it was written at."""
        key = int(key)
        data = encode_record(payload)
        offset = self._offset
        self._rec.write(data)
        self._idx.write(f"{key}\t{offset}\n")
        self._offset += len(data)
        self.count += 1
        return offset

    def _patch(self, offset: int, payload: bytes) -> None:
        """Overwrite the record at ``offset`` with one of exactly the same encoded size."""
        data = encode_record(payload)
        self._rec.seek(offset)
        self._rec.write(data)
        self._rec.seek(self._offset)

    def close(self) -> None:
        """Flush and move both files to their final names."""
        self._stack.close()

    def abort(self) -> None:
        """Discard everything written; the final names are not touched."""
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> RecordIOWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stack.__exit__(exc_type, exc, tb)


def write_insightface(
    folder: str | os.PathLike,
    items: Iterable[tuple[int, bytes]],
    *,
    vector_label: bool = False,
    shuffled: bool = False,
) -> dict:
    """Write ``train.rec``, ``train.idx`` and ``property`` into ``folder``.

    Args:
        folder: output folder (created if needed).
        items: ``(label, image_bytes)`` pairs. For the InsightFace layout they must be grouped by
            label in ascending order; image ``i`` gets key ``i + 1``.
        vector_label: store labels as ``[class, 1.0]`` (flag 2, like ``face2rec2.py``) instead of a
            scalar.
        shuffled: write the headerless layout instead (no header or identity records, image ``i``
            gets key ``i``, any label order), like InsightFace's ``shuffle_rec.py`` output; shuffle
            the items yourself beforehand.

    Returns:
        ``{"num_images": N, "num_classes": C}`` with ``C = max label + 1`` (in the InsightFace layout
        a class without images gets an empty ``[start, start)`` range).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with RecordIOWriter(folder / "train.rec", folder / "train.idx") as writer:
        if shuffled:
            counts = _write_images(writer, items, vector_label, first_key=0)
        else:
            counts = _write_insightface_records(writer, items, vector_label)
    atomic_write_text(folder / "property", f"{counts['num_classes']},112,112\n")
    return counts


def _image_label(label: int, vector_label: bool) -> float | list[float]:
    return [float(label), 1.0] if vector_label else float(label)


def _write_images(
    writer: RecordIOWriter, items: Iterable[tuple[int, bytes]], vector_label: bool, first_key: int
) -> dict:
    """Write image records with consecutive keys from ``first_key``; return counts."""
    num_images, max_label = 0, -1
    for label, image in items:
        label = _check_label(label)
        writer.write(first_key + num_images, pack_image_record(_image_label(label, vector_label), image))
        num_images += 1
        max_label = max(max_label, label)
    return {"num_images": num_images, "num_classes": max_label + 1}


def _write_insightface_records(
    writer: RecordIOWriter, items: Iterable[tuple[int, bytes]], vector_label: bool
) -> dict:
    """Header record, images grouped by label, then one ``[start, end)`` record per class."""
    writer.write(0, _meta_record(0, 0))  # placeholder, patched once N and C are known
    starts: list[int] = []  # starts[c] = first image key of class c
    key = 1
    for label, image in items:
        label = _check_label(label)
        if label < len(starts) - 1:
            raise ValueError(f"item {key - 1}: label {label} after label {len(starts) - 1}; "
                             "items must be grouped by label in ascending order")
        while len(starts) <= label:
            starts.append(key)
        writer.write(key, pack_image_record(_image_label(label, vector_label), image))
        key += 1
    num_images, num_classes = key - 1, len(starts)
    ends = starts[1:] + [key]
    for cls in range(num_classes):
        writer.write(key + cls, _meta_record(starts[cls], ends[cls]))
    writer._patch(0, _meta_record(key, key + num_classes))
    return {"num_images": num_images, "num_classes": num_classes}


def _meta_record(start: int, end: int) -> bytes:
    """An InsightFace header/identity record: flag 2, label ``[start, end]``, no image."""
    if max(start, end) > 1 << 24:
        raise ValueError(f"key {max(start, end)} exceeds 2^24 and cannot be stored exactly in float32")
    return pack_image_record([start, end], b"")


def _check_label(label: int) -> int:
    if int(label) != label or label < 0:
        raise ValueError(f"labels must be non-negative integers, got {label!r}")
    return int(label)


# --------------------------------------------------------------------------------------------------
# Index


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
                raise _Truncated(_read_part_head_error(head, rec_path, pos), np.asarray(offsets, np.int64))
            cflag, length = _read_part_head(head, rec_path, pos)
            start = _track_sequence(cflag, start, pos, rec_path)
            end = pos + 8 + length + _padding(length)
            if end > size:
                raise _Truncated(_truncated(rec_path, pos, end, size), np.asarray(offsets, np.int64))
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


def _read_part_head_error(head: bytes, path: Path, pos: int) -> DataError:
    return DataError(path, f"offset {pos}", f"truncated part header ({len(head)} of 8 bytes)")


def _read_part_head(head: bytes, path: Path, pos: int) -> tuple[int, int]:
    if len(head) < 8:
        raise _read_part_head_error(head, path, pos)
    magic, lrec = _PART_HEAD.unpack(head)
    if magic != MAGIC:
        raise DataError(path, f"offset {pos}", f"wrong magic 0x{magic:08x} (expected 0x{MAGIC:08x}): "
                        "no record starts here")
    return lrec >> 29, lrec & LENGTH_MASK


def _track_sequence(cflag: int, start: int | None, pos: int, path: Path) -> int:
    """Check that ``cflag`` may follow the parts seen so far; return the record's start offset."""
    if start is None and cflag in (CFLAG_WHOLE, CFLAG_FIRST):
        return pos
    if start is not None and cflag in (CFLAG_MIDDLE, CFLAG_LAST):
        return start
    if start is None:
        reason = f"continuation part (cflag {cflag}) without a first part: not the start of a record"
    else:
        reason = f"split record from offset {start} is interrupted by a part with cflag {cflag}"
    raise DataError(path, f"offset {pos}", reason)


def _truncated(path: Path, pos: int, end: int, size: int) -> DataError:
    return DataError(path, f"offset {pos}", f"truncated record: needs bytes up to {end}, file has {size}")


# --------------------------------------------------------------------------------------------------
# Reader


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
            cflag, length = _read_part_head(os.pread(fd, 8, pos), self.rec_path, pos)
            start = _track_sequence(cflag, start, pos, self.rec_path)
            data = os.pread(fd, length, pos + 8) if length else b""
            if len(data) < length:
                raise _truncated(self.rec_path, pos, pos + 8 + length, self.size)
            pieces.append(data)
            if cflag in (CFLAG_WHOLE, CFLAG_LAST):
                return pieces[0] if len(pieces) == 1 else MAGIC_BYTES.join(pieces)
            pos += 8 + length + _padding(length)

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
        cflag, length = _read_part_head(f.read(8), path, pos)
        start = _track_sequence(cflag, start, pos, path)
        data = f.read(length + _padding(length))
        if len(data) < length + _padding(length):
            raise _truncated(path, pos, pos + 8 + length + _padding(length), size)
        pieces.append(data[:length])
        pos += 8 + len(data)
        if cflag in (CFLAG_WHOLE, CFLAG_LAST):
            yield start, MAGIC_BYTES.join(pieces)
            start, pieces = None, []
    if start is not None:
        raise DataError(path, f"offset {start}", "split record has no last part (file truncated?)")
