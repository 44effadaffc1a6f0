"""The container's physical parts: magic word, length word with continuation flag, payload, padding."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np

from fr_data.io.errors import DataError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
MAX_RECORD_BYTES = (1 << 29) - 1  # dmlc: CHECK(size < (1 << 29))
LENGTH_MASK = (1 << 29) - 1

CFLAG_WHOLE = 0
CFLAG_FIRST = 1
CFLAG_MIDDLE = 2
CFLAG_LAST = 3

PART_HEAD = struct.Struct("<II")


def encode_lrec(cflag: int, length: int) -> int:
    return (cflag << 29) | length


def padding(length: int) -> int:
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
        out.write(PART_HEAD.pack(MAGIC, encode_lrec(cflag, len(piece))))
        out.write(piece)
        out.write(b"\0" * padding(len(piece)))
    return out.getvalue()


class TruncatedError(DataError):
    """The file ends inside a record (a part header, a part, or a split record's missing last part)."""


def read_part_head_error(head: bytes, path: Path, pos: int) -> DataError:
    return TruncatedError(path, f"offset {pos}", f"truncated part header ({len(head)} of 8 bytes)")


def read_part_head(head: bytes, path: Path, pos: int) -> tuple[int, int]:
    if len(head) < 8:
        raise read_part_head_error(head, path, pos)
    magic, lrec = PART_HEAD.unpack(head)
    if magic != MAGIC:
        raise DataError(path, f"offset {pos}", f"wrong magic 0x{magic:08x} (expected 0x{MAGIC:08x}): "
                        "no record starts here")
    return lrec >> 29, lrec & LENGTH_MASK


def track_sequence(cflag: int, start: int | None, pos: int, path: Path) -> int:
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


def truncated_error(path: Path, pos: int, end: int, size: int) -> DataError:
    return TruncatedError(path, f"offset {pos}", f"truncated record: needs bytes up to {end}, file has {size}")


def no_last_part_error(path: Path, start: int) -> DataError:
    return TruncatedError(path, f"offset {start}", "split record has no last part (file truncated?)")
