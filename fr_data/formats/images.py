"""Encoded face images: which formats are accepted, how their type and size are read from the header.

Sources and shards carry JPEG or PNG bytes exactly as stored; this module is the one place that knows
their magic bytes, file and tar-member extensions, and how to read a size without decoding.
"""

from __future__ import annotations

import os
import struct

JPEG_SOI = b"\xff\xd8\xff"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: File-name suffixes of image files in an image folder (compared lower-cased).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
#: Extensions an image member of a shard sample may have, in lookup order.
MEMBER_EXTS = ("jpg", "png", "jpeg")
#: The tar-member extension each format is stored under.
FORMAT_EXT = {"jpeg": "jpg", "png": "png"}

# JPEG start-of-frame markers (baseline, progressive, lossless...); C4/C8/CC are DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD9)) | {0x01}  # RSTn, SOI, TEM: markers without a length
_SOS = 0xDA  # start of scan
_LENGTH_SEGMENTS = frozenset(range(0x100)) - _SOF - _STANDALONE - {0xFF, _SOS}  # APPn, DQT, DHT, COM...
_SOF_SIZE = struct.Struct(">HH")  # height, width (after the precision byte)


def image_format(data: bytes) -> str | None:
    """``"jpeg"`` or ``"png"`` judged by the leading magic bytes, else ``None``."""
    if data.startswith(JPEG_SOI):
        return "jpeg"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    return None


def is_image_name(name: str | os.PathLike) -> bool:
    """True when a file name has an image suffix (``.jpg``, ``.jpeg``, ``.png``, any case)."""
    return os.path.splitext(os.fspath(name))[1].lower() in IMAGE_SUFFIXES


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's start-of-frame header, or None if there is none before the scan."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in _LENGTH_SEGMENTS:  # the common case first; the marker classes are disjoint
            pos += 2 + (data[pos + 2] << 8 | data[pos + 3])
        elif marker in _SOF:
            if pos + 9 > end:
                return None
            height, width = _SOF_SIZE.unpack_from(data, pos + 5)
            return width, height
        elif marker == 0xFF:  # fill byte
            pos += 1
        elif marker in _STANDALONE:
            pos += 2
        else:  # start of scan before any frame header
            return None
    return None


def png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR chunk, or None when it is not where it must be."""
    if len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


_SIZE_READERS = {"jpeg": jpeg_size, "png": png_size}


def header_size(data: bytes) -> tuple[str, tuple[int, int] | None] | None:
    """``(member ext, (width, height) or None)`` read from the JPEG/PNG header; None when neither format."""
    fmt = image_format(data)
    if fmt is None:
        return None
    return FORMAT_EXT[fmt], _SIZE_READERS[fmt](data)
