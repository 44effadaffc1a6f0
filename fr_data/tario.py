"""Minimal, deterministic tar (ustar) writing and fast sequential reading for WebDataset shards.

Shards hold only small regular files named ``KEY.EXT``. The writer fixes every header field that
could vary between runs (mtime 0, uid/gid 0, empty user/group names, mode 0644), so the same samples
always give byte-identical shards; it hashes the archive while writing it. The reader walks 512-byte
headers directly (no ``tarfile`` member objects), checks each header checksum, and understands the
pax and GNU long-name extensions so that tars written by other tools can be read too.

Format reference: POSIX.1-1988 ustar header layout (name 100, mode 8, uid 8, gid 8, size 12, mtime 12,
chksum 8, typeflag 1, linkname 100, magic 6, version 2, uname 32, gname 32, devmajor 8, devminor 8,
prefix 155, padding 12).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import BinaryIO

from fr_data.errors import DataError

BLOCK = 512
RECORD = 20 * BLOCK  # archives are padded to whole 10240-byte records, like GNU tar and Python's tarfile
_REGULAR = (b"0", b"\0", b"7")
_SKIPPED = (b"1", b"2", b"3", b"4", b"5", b"6", b"g")  # links, devices, dirs, fifos, global pax


def _octal(value: int, width: int) -> bytes:
    """Field of ``width`` bytes: zero-padded octal digits followed by a NUL."""
    digits = f"{value:0{width - 1}o}".encode("ascii")
    if len(digits) > width - 1:
        raise ValueError(f"value {value} does not fit a {width}-byte tar field")
    return digits + b"\0"


def _template() -> tuple[bytes, int]:
    """The constant part of every header (name and size left as NULs) and its byte sum."""
    block = (b"\0" * 100 + _octal(0o644, 8) + _octal(0, 8) + _octal(0, 8) + b"\0" * 12 + _octal(0, 12)
             + b" " * 8 + b"0" + b"\0" * 100 + b"ustar\x0000" + b"\0" * 64 + _octal(0, 8) + _octal(0, 8))
    block = block.ljust(BLOCK, b"\0")
    return block, sum(block)


_TEMPLATE, _TEMPLATE_SUM = _template()


def ustar_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file ``name`` holding ``size`` bytes (fixed metadata)."""
    raw = name.encode("utf-8")
    if len(raw) > 100 or size >= 8 ** 11:
        raise ValueError(f"tar member {name!r} of {size} bytes does not fit a ustar header")
    size_field = b"%011o\0" % size
    header = bytearray(_TEMPLATE)
    header[:len(raw)] = raw
    header[124:136] = size_field
    header[148:156] = b"%06o\0 " % (_TEMPLATE_SUM + sum(raw) + sum(size_field))
    return bytes(header)


class TarWriter:
    """Write regular-file members to a binary stream, hashing everything written (sha256).

    Args:
        stream: an open, writable binary file.
    """

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def _put(self, data: bytes) -> None:
        self._stream.write(data)
        self._hash.update(data)
        self.size += len(data)

    def add(self, name: str, data: bytes) -> None:
        """Append the member ``name`` with contents ``data``."""
        pad = -len(data) % BLOCK
        self._put(ustar_header(name, len(data)) + data + b"\0" * pad)

    def add_many(self, members: list[tuple[str, bytes]]) -> None:
        """Append several ``(name, data)`` members with a single write."""
        parts = []
        for name, data in members:
            parts += (ustar_header(name, len(data)), data, b"\0" * (-len(data) % BLOCK))
        self._put(b"".join(parts))

    def finish(self) -> str:
        """Write the end-of-archive marker and record padding; return the archive's sha256 hex digest."""
        end = 2 * BLOCK
        self._put(b"\0" * (end + (-(self.size + end) % RECORD)))
        return self._hash.hexdigest()


def _parse_octal(field: bytes, path: str, offset: int) -> int:
    text = field.rstrip(b"\0 ").strip()
    if field[:1] == b"\x80":  # GNU base-256 for large values
        return int.from_bytes(field[1:], "big")
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise DataError(path, f"offset {offset}", f"bad numeric field {field!r} in tar header") from None


def _checksum_ok(block: bytes) -> bool:
    stored = block[148:156].rstrip(b"\0 ").strip()
    try:
        expected = int(stored, 8)
    except ValueError:
        return False
    return expected == sum(block[:148]) + 256 + sum(block[156:])


def _pax_path(data: bytes) -> str | None:
    """The ``path`` value of a pax extended header, if any (records are ``"LEN key=value\\n"``)."""
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        if key == b"path":
            return value.decode("utf-8")
        pos += length
    return None


def _read_exact(stream: BinaryIO, n: int, path: str, offset: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise DataError(path, f"offset {offset}", f"tar archive truncated (wanted {n} bytes, got {len(data)})")
    return data


def iter_members(stream: BinaryIO, path: str | os.PathLike = "<stream>") -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for each regular file of a tar stream, in archive order.

    Raises:
        DataError: naming ``path`` and the byte offset of a corrupt header or a truncated member.
    """
    path = os.fspath(path)
    offset, long_name = 0, None
    while True:
        block = stream.read(BLOCK)
        if len(block) < BLOCK or block == b"\0" * BLOCK:
            if block and len(block) < BLOCK:
                raise DataError(path, f"offset {offset}", "tar archive truncated inside a header")
            return
        if not _checksum_ok(block):
            raise DataError(path, f"offset {offset}", "tar header checksum mismatch")
        size = _parse_octal(block[124:136], path, offset)
        kind = block[156:157]
        data = _read_exact(stream, size, path, offset + BLOCK)
        stream.read(-size % BLOCK)
        if kind in (b"x", b"L"):
            long_name = _pax_path(data) if kind == b"x" else data.rstrip(b"\0").decode("utf-8")
        elif kind in _REGULAR:
            name = long_name or _header_name(block)
            long_name = None
            yield name, data
        elif kind in _SKIPPED:
            long_name = None
        else:
            raise DataError(path, f"offset {offset}", f"unsupported tar member type {kind!r}")
        offset += BLOCK + size + (-size % BLOCK)


def _header_name(block: bytes) -> str:
    name = block[:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar":
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8")


def group_members(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {ext: bytes})`` per sample of a tar shard (members of a sample must be adjacent).

    Raises:
        DataError: a member name without an extension, or a key whose members are not adjacent.
    """
    seen: set[str] = set()
    key, members = None, {}
    with open(path, "rb", buffering=1 << 20) as stream:
        for name, data in iter_members(stream, path):
            base = name.rsplit("/", 1)[-1]
            if "." not in base:
                raise DataError(path, f"member {name}", "member name has no extension")
            k, ext = base.split(".", 1)
            k = name[:len(name) - len(base)] + k
            if k != key:
                if key is not None:
                    yield key, members
                if k in seen:
                    raise DataError(path, f"member {name}", f"members of sample {k} are not adjacent")
                seen.add(k)
                key, members = k, {}
            members[ext] = data
    if key is not None:
        yield key, members
