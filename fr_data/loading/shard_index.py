"""Random access by sample key into WebDataset tar shards, from one scan of the tar headers.

Each sample of a shard is a run of adjacent tar members ``KEY.EXT`` (see :mod:`fr_data.folders.shard_folder`). One pass
over the 512-byte headers (the member data is skipped, never read) records per sample: its shard, the
byte span ``[start, stop)`` holding all its members, and the data offset and size of its image
member. The table is cached as ``shard_index.parquet`` beside the shards (``SHARD_INDEX_SCHEMA``); the
Parquet metadata records each shard's size and mtime, and a cache that no longer matches the shards
is rebuilt.

Reads use ``os.pread`` on descriptors opened lazily: pread takes an explicit offset and never moves a
shared file position, so descriptors inherited by forked DataLoader workers stay correct; pickling
(spawned workers) drops them and they are reopened on first use.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fr_data.folders.shard_folder import (
    SHARD_INDEX_FILE,
    SHARD_INDEX_SCHEMA,
    SHARD_INDEX_VERSION,
    list_shards,
)
from fr_data.formats.images import MEMBER_EXTS
from fr_data.formats.tario import BLOCK, iter_headers, iter_members
from fr_data.io.errors import DataError
from fr_data.io.parquet import read_metadata, read_table, write_table
from fr_data.loading.agreement import ManifestCheck

MAX_OPEN_FILES = 64


@dataclass(frozen=True)
class Member:
    """A regular file inside a tar: its name, the offset of its first header, its data offset and size."""

    name: str
    header: int
    offset: int
    size: int

    @property
    def end(self) -> int:
        """Offset just past the member's data padding."""
        return self.offset + self.size + (-self.size % BLOCK)


def scan_members(path: str | os.PathLike) -> Iterator[Member]:
    """Walk the headers of a tar file and yield its regular members (data skipped with seeks).

    Pax (``x``) and GNU (``L``) long-name records are read and attached to the member they name.

    Raises:
        DataError: naming the file and byte offset of a corrupt header or a truncated member.
    """
    for header in iter_headers(path):
        yield Member(header.name, header.start, header.offset, header.size)


def _split_name(path: Path, name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    if "." not in base:
        raise DataError(path, f"member {name}", "member name has no extension")
    stem, ext = base.split(".", 1)
    return name[:len(name) - len(base)] + stem, ext


def _sample_row(path: Path, key: str, members: list[tuple[str, Member]]) -> dict:
    images = [(ext, m) for ext, m in members if ext in MEMBER_EXTS]
    if len(images) != 1:
        raise DataError(path, f"key {key}",
                        f"sample needs exactly one image member, has {[e for e, _ in members]}")
    ext, image = images[0]
    return {"key": key, "shard": path.name, "start": members[0][1].header, "stop": members[-1][1].end,
            "ext": ext, "offset": image.offset, "size": image.size}


def index_shard(path: str | os.PathLike) -> Iterator[dict]:
    """Index rows (``SHARD_INDEX_SCHEMA`` as dicts) of one shard, in file order.

    Raises:
        DataError: a sample whose members are not adjacent, or without exactly one image member; a shard
            that disagrees with its folder's ``samples.parquet`` (:mod:`fr_data.loading.agreement`).
    """
    path, seen, check = Path(path), set(), ManifestCheck(path)
    key, members = None, []
    for member in scan_members(path):
        k, ext = _split_name(path, member.name)
        if k != key:
            if key is not None:
                yield _sample_row(path, key, members)
            if k in seen:
                raise DataError(path, f"member {member.name}", f"members of sample {k} are not adjacent")
            check.sample(k, member.name)
            seen.add(k)
            key, members = k, []
        members.append((ext, member))
    if key is not None:
        yield _sample_row(path, key, members)
    check.end()


def shard_stamps(shards: Sequence[Path]) -> list[dict]:
    """Name, size and mtime of each shard: what the cached index must still match."""
    return [{"name": p.name, "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in shards]


def build_index(shards: Sequence[str | os.PathLike]) -> pa.Table:
    """Scan the headers of every shard into one ``SHARD_INDEX_SCHEMA`` table (file order, shard by shard).

    Raises:
        DataError: bad tar data, or one key stored in two shards.
    """
    tables = []
    for shard in map(Path, shards):
        rows = list(index_shard(shard))
        columns = {f.name: [r[f.name] for r in rows] for f in SHARD_INDEX_SCHEMA}
        tables.append(pa.table(columns, schema=SHARD_INDEX_SCHEMA))
    table = pa.concat_tables(tables) if tables else SHARD_INDEX_SCHEMA.empty_table()
    keys = table.column("key").to_numpy(zero_copy_only=False)
    unique, counts = np.unique(keys, return_counts=True)
    if len(unique) != len(keys):
        dup = unique[counts > 1][0]
        where = table.filter(pc.equal(table.column("key"), dup)).column("shard").to_pylist()
        raise DataError(Path(shards[0]).parent, f"key {dup}", f"stored in more than one place: {where}")
    return table


def load_or_build(folder: Path, shards: Sequence[Path], cache: bool = True) -> pa.Table:
    """The cached index of ``shards`` if it matches them, else a fresh scan (written back when possible)."""
    path, stamps = folder / SHARD_INDEX_FILE, shard_stamps(shards)
    if path.is_file():
        meta = read_metadata(path)
        if meta.get("version") == SHARD_INDEX_VERSION and meta.get("shards") == stamps:
            return read_table(path, SHARD_INDEX_SCHEMA)
    table = build_index(shards)
    if cache:
        try:
            write_table(table, path, SHARD_INDEX_SCHEMA, metadata={"version": SHARD_INDEX_VERSION, "shards": stamps})
        except OSError as exc:
            warnings.warn(f"{path}: shard index not cached ({exc}); it will be rebuilt next time",
                          stacklevel=2)
    return table


class ShardIndex:
    """Key -> shard, byte span and image location, with pread-based reads safe in forked workers.

    Build with :meth:`open`. Keys are held sorted as UTF-8 bytes (binary search), one row per sample.

    Attributes:
        shards: shard paths; ``shard_ids`` index into it.
        keys: sorted sample keys (UTF-8 bytes array); the arrays below are aligned with it.
        shard_ids: shard of each sample.
        start / stop: byte span of each sample's members (headers included).
        offset / size: where each sample's image bytes lie.
    """

    def __init__(self, shards: Sequence[Path], table: pa.Table):
        self.shards = [Path(s) for s in shards]
        encoded = table.column("key").cast(pa.binary()).to_numpy(zero_copy_only=False).astype(bytes)
        order = np.argsort(encoded, kind="stable")
        self.keys = encoded[order]
        shard_codes = table.column("shard").combine_chunks().dictionary_encode()
        names = shard_codes.dictionary.to_pylist()
        position = {p.name: i for i, p in enumerate(self.shards)}
        unknown = sorted(set(names) - set(position))
        if unknown:
            raise DataError(self.shards[0].parent if self.shards else "", "",
                            f"index names unknown shards {unknown}")
        code_to_id = np.asarray([position[n] for n in names], dtype=np.int32)
        self.shard_ids = code_to_id[shard_codes.indices.to_numpy(zero_copy_only=False)][order]
        self.start: np.ndarray = table.column("start").to_numpy()[order]
        self.stop: np.ndarray = table.column("stop").to_numpy()[order]
        self.offset: np.ndarray = table.column("offset").to_numpy()[order]
        self.size: np.ndarray = table.column("size").to_numpy()[order]
        self._fds: dict[int, int] = {}

    @classmethod
    def open(cls, folder: str | os.PathLike, shards: Sequence[str | os.PathLike] | None = None, *,
             cache: bool = True) -> ShardIndex:
        """The index of a shard folder (its ``list_shards`` order, or the given shards), cached on disk."""

        folder = Path(folder)
        paths = [Path(s) for s in shards] if shards is not None else list_shards(folder)
        return cls(paths, load_or_build(folder, paths, cache))

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fds"] = {}
        return state

    def rows(self, keys: Sequence[str] | np.ndarray) -> np.ndarray:
        """Row numbers of ``keys`` (vectorised binary search).

        Raises:
            DataError: a key the shards do not hold (the first such key is named).
        """
        wanted = np.char.encode(np.asarray(keys, dtype=str), "utf-8")
        rows = np.searchsorted(self.keys, wanted)
        hit = rows < len(self.keys)
        hit[hit] = self.keys[rows[hit]] == wanted[hit]
        if not hit.all():
            missing = np.asarray(keys)[~hit]
            raise DataError(self.shards[0].parent if self.shards else "", f"key {missing[0]}",
                            f"{len(missing)} key(s) not found in the shard index")
        return rows

    def locate(self, keys: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(shard_ids, offsets, sizes)`` of the image members of ``keys``."""
        rows = self.rows(keys)
        return self.shard_ids[rows], self.offset[rows], self.size[rows]

    def read_at(self, shard_id: int, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` of shard ``shard_id``.

        Raises:
            DataError: the shard is shorter than the index says (changed since indexing).
        """
        data = os.pread(self._fd(int(shard_id)), int(size), int(offset))
        if len(data) != size:
            raise DataError(self.shards[shard_id], f"offset {offset}",
                            f"short read ({len(data)} of {size} bytes): shard changed since it was indexed")
        return data

    def read_image(self, key: str) -> bytes:
        """The stored image bytes of sample ``key``."""
        row = int(self.rows([key])[0])
        return self.read_at(self.shard_ids[row], self.offset[row], self.size[row])

    def read(self, key: str) -> dict[str, bytes]:
        """Every member of sample ``key`` as ``{ext: bytes}`` (one pread of its byte span)."""
        row = int(self.rows([key])[0])
        shard = self.shard_ids[row]
        span = self.read_at(shard, self.start[row], self.stop[row] - self.start[row])
        path = f"{self.shards[shard]}@{self.start[row]}"
        return {_split_name(Path(path), name)[1]: data for name, data in iter_members(io.BytesIO(span), path)}

    def _fd(self, shard_id: int) -> int:
        fd = self._fds.get(shard_id)
        if fd is None:
            if len(self._fds) >= MAX_OPEN_FILES:
                os.close(self._fds.pop(next(iter(self._fds))))
            fd = self._fds[shard_id] = os.open(self.shards[shard_id], os.O_RDONLY)
        return fd

    def close(self) -> None:
        """Close the open shard descriptors (reads reopen them)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
