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

import functools
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from fr_data.io.errors import DataError

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


_HEAD_MODE_IDS = _TEMPLATE[100:124]  # mode, uid, gid
_HEAD_MTIME = _TEMPLATE[136:148]
_HEAD_TAIL = _TEMPLATE[156:]  # typeflag, linkname, magic, version, names, devices, prefix, padding
_NULS = b"\0" * BLOCK
FLUSH_BYTES = 1 << 20  # TarWriter buffers this much before one write + one hash update


def _header(raw: bytes, size: int) -> bytes:
    """Header of a regular file whose encoded name ``raw`` (<= 100 bytes) holds ``size`` bytes."""
    size_field = b"%011o\0" % size
    checksum = b"%06o\0 " % (_TEMPLATE_SUM + sum(raw) + sum(size_field))
    return b"".join((raw, _NULS[len(raw):100], _HEAD_MODE_IDS, size_field, _HEAD_MTIME, checksum, _HEAD_TAIL))


_SIZE_SUMS = [sum(b"%011o" % size) for size in range(4096)]  # byte sums of small size fields
_HEAD_SIZE_TO_CHKSUM = b"%011o\0" + _HEAD_MTIME + b"%06o\0 "  # header bytes 124-156: size, mtime, chksum
_PADDING = tuple(_NULS[:length] for length in range(BLOCK))  # member padding by length, prebuilt


def _size_sum(size: int) -> int:
    """``sum(b"%011o" % size)`` for any ``size < 8**11``, from the sums of its three 4-digit groups."""
    low, middle, high = size & 4095, size >> 12 & 4095, size >> 24
    return _SIZE_SUMS[low] + _SIZE_SUMS[middle] + _SIZE_SUMS[high] - 2 * _SIZE_SUMS[0]


@functools.cache
def _member_format(ext: str, stem_length: int) -> tuple[bytes | None, int]:
    """``(header bytes after the stem up to the size field, byte sum of the ext)`` for ``STEM.EXT``.

    The bytes are the encoded extension, the NUL padding of the 100-byte name field and the fixed
    mode/uid/gid fields; None when the name is longer than 100 bytes.
    """
    raw = ext.encode("utf-8")
    name_length = stem_length + len(raw)
    if name_length > 100:
        return None, sum(raw)
    return raw + _NULS[name_length:100] + _HEAD_MODE_IDS, sum(raw)


def ustar_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file ``name`` holding ``size`` bytes (fixed metadata)."""
    raw = name.encode("utf-8")
    if len(raw) > 100 or size >= 8 ** 11:
        raise ValueError(f"tar member {name!r} of {size} bytes does not fit a ustar header")
    return _header(raw, size)


class TarWriter:
    """Write regular-file members to a binary stream, hashing everything written (sha256).

    Members are buffered and written (and hashed) in blocks of about :data:`FLUSH_BYTES`, so the
    per-member cost is a few list appends; :meth:`finish` writes what is left. Nothing is
    guaranteed to be on the stream before :meth:`finish` (or :meth:`flush`) is called.

    Args:
        stream: an open, writable binary file.
    """

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._hash = hashlib.sha256()
        self._parts: list[bytes] = []
        self._pending = 0
        self.size = 0

    def _queue(self, parts: list[bytes], nbytes: int) -> None:
        self._parts += parts
        self._pending += nbytes
        self.size += nbytes
        if self._pending >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write and hash the buffered members."""
        if self._parts:
            data = b"".join(self._parts)
            self._stream.write(data)
            self._hash.update(data)
            self._parts.clear()
            self._pending = 0

    def add(self, name: str, data: bytes) -> None:
        """Append the member ``name`` with contents ``data``."""
        self.add_many([(name, data)])

    def add_many(self, members: list[tuple[str, bytes]]) -> None:
        """Append several ``(name, data)`` members."""
        parts, nbytes = [], 0
        for name, data in members:
            size = len(data)
            pad = -size % BLOCK
            parts += (ustar_header(name, size), data, _NULS[:pad])
            nbytes += BLOCK + size + pad
        self._queue(parts, nbytes)

    def add_sample(self, key: str, members: list[tuple[str, bytes]]) -> None:
        """Append one sample's members ``KEY.EXT``, given as ``(ext, data)`` pairs in archive order.

        Byte-identical to :meth:`add_many` with the full names, but each header is queued as cached
        pieces around one small formatting call (size, mtime, checksum): the shard writer's hot path.
        """
        stem = key.encode("utf-8") + b"."
        base, parts, nbytes = _TEMPLATE_SUM + sum(stem), [], 0
        for ext, data in members:
            name_rest, ext_sum = _member_format(ext, len(stem))
            size = len(data)
            if name_rest is None or size >= 8 ** 11:
                return self.add_many([(f"{key}.{e}", d) for e, d in members])  # raises the usual error
            checksum = base + ext_sum + (_SIZE_SUMS[size] if size < 4096 else _size_sum(size))
            pad = -size % BLOCK
            size_to_checksum = _HEAD_SIZE_TO_CHKSUM % (size, checksum)
            parts += (stem, name_rest, size_to_checksum, _HEAD_TAIL, data, _PADDING[pad])
            nbytes += BLOCK + size + pad
        self._queue(parts, nbytes)

    def finish(self) -> str:
        """Write the end-of-archive marker and record padding; return the archive's sha256 hex digest."""
        end = 2 * BLOCK
        tail = end + (-(self.size + end) % RECORD)
        self._queue([b"\0" * tail], tail)
        self.flush()
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


def _header_name(block: bytes) -> str:
    name = block[:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar":
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8")


def _parse_block(block: bytes, path: str, offset: int) -> tuple[bytes, int]:
    """``(typeflag, size)`` of a checked header block at ``offset``."""
    if not _checksum_ok(block):
        raise DataError(path, f"offset {offset}", "tar header checksum mismatch")
    return block[156:157], _parse_octal(block[124:136], path, offset)


def _long_name(kind: bytes, data: bytes) -> str | None:
    """The member name carried by a pax (``x``) or GNU long-name (``L``) record."""
    return _pax_path(data) if kind == b"x" else data.rstrip(b"\0").decode("utf-8")


def _read_exact(stream: BinaryIO, n: int, path: str, offset: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise DataError(path, f"offset {offset}", f"tar archive truncated (wanted {n} bytes, got {len(data)})")
    return data


@dataclass(frozen=True)
class MemberHeader:
    """Where a regular file lies in a tar.

    Attributes:
        name: the member name (pax / GNU long names resolved).
        start: offset of its first header (the pax/long-name header when there is one).
        offset: offset of its data.
        size: data size in bytes (the data is padded to a multiple of :data:`BLOCK`).
    """

    name: str
    start: int
    offset: int
    size: int


def iter_headers(path: str | os.PathLike) -> Iterator[MemberHeader]:
    """Walk a tar file's headers and yield its regular members, skipping their data with seeks.

    Raises:
        DataError: naming ``path`` and the byte offset of a corrupt header or of a member that runs
            past the end of the file.
    """
    where, size_on_disk = os.fspath(path), os.path.getsize(path)
    with open(path, "rb") as stream:
        fd, offset, first, long_name = stream.fileno(), 0, None, None
        while offset + BLOCK <= size_on_disk:
            block = os.pread(fd, BLOCK, offset)
            if block == _NULS:
                return
            kind, size = _parse_block(block, where, offset)
            data_at = offset + BLOCK
            if data_at + size > size_on_disk:
                raise DataError(path, f"offset {offset}", f"tar member of {size} bytes runs past the end")
            first = offset if first is None else first
            if kind in (b"x", b"L"):
                long_name = _long_name(kind, os.pread(fd, size, data_at))
            else:
                if kind in _REGULAR:
                    yield MemberHeader(long_name or _header_name(block), first, data_at, size)
                first, long_name = None, None
            offset = data_at + size + (-size % BLOCK)
    if offset < size_on_disk:
        raise DataError(path, f"offset {offset}", "tar archive truncated inside a header")


def iter_members(stream: BinaryIO, path: str | os.PathLike = "<stream>") -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for each regular file of a tar stream, in archive order.

    Raises:
        DataError: naming ``path`` and the byte offset of a corrupt header or a truncated member.
    """
    path = os.fspath(path)
    offset, long_name = 0, None
    while True:
        block = stream.read(BLOCK)
        if len(block) < BLOCK or block == _NULS:
            if block and len(block) < BLOCK:
                raise DataError(path, f"offset {offset}", "tar archive truncated inside a header")
            return
        kind, size = _parse_block(block, path, offset)
        data = _read_exact(stream, size, path, offset + BLOCK)
        stream.read(-size % BLOCK)
        if kind in (b"x", b"L"):
            long_name = _long_name(kind, data)
        elif kind in _REGULAR:
            name = long_name or _header_name(block)
            long_name = None
            yield name, data
        elif kind in _SKIPPED:
            long_name = None
        else:
            raise DataError(path, f"offset {offset}", f"unsupported tar member type {kind!r}")
        offset += BLOCK + size + (-size % BLOCK)


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
