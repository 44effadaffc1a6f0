"""Writing one shard: read its records in batches, check each image, write the tar and its manifest rows.

The tar appears under its final name only when complete (temp + rename); then the rejected rows and,
last, the sample rows go into the shard folder's ``.parts/`` sidecars, whose presence marks the shard
as finished for a resumed run.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fr_data.folders.shard_folder import (
    PROVENANCE_SCHEMA,
    REJECTED_SCHEMA,
    SAMPLES_SCHEMA,
    WRITTEN_SAMPLES_SCHEMA,
    part_paths,
)
from fr_data.formats.tario import TarWriter
from fr_data.ingest.inspect import ImageInfo, inspect_image
from fr_data.ingest.plan import ShardPlan
from fr_data.ingest.source import Source, SourceRecord, origin_of
from fr_data.io.atomic import atomic_path
from fr_data.io.errors import DataError
from fr_data.io.parquet import read_metadata, write_table
from fr_data.io.policy import ErrorPolicy

READ_BATCH = 1024  # records read per batch, in ascending source order (bounds memory per worker)


@dataclass(frozen=True)
class ShardRecord:
    """One finished shard as listed in ``shards.json``."""

    name: str
    count: int
    bytes: int
    sha256: str
    rejected: int


@dataclass
class ShardJob:
    """Everything a (possibly forked) worker needs to write any shard of a plan."""

    source: Source
    plan: ShardPlan
    order: np.ndarray
    out: Path
    errors: ErrorPolicy


def _checked(job: ShardJob, index: int, record: SourceRecord | DataError, decode: bool) -> ImageInfo | DataError:
    """The image info of a read record, or the DataError (file + locator) of a bad read or image."""
    if isinstance(record, DataError):
        return record
    try:
        return inspect_image(record.data, "", "", decode)
    except DataError as exc:
        return DataError(*job.source.locate(index), exc.reason)


def _inspected(job: ShardJob, indices: list[int], decoded: list[bool]) -> Iterator[tuple[int, SourceRecord | DataError, ImageInfo | DataError]]:
    """``(index, record, ImageInfo or DataError)`` per index, in order.

    Reads :data:`READ_BATCH` records at a time, in source order (bounded memory per worker).
    """
    for first in range(0, len(indices), READ_BATCH):
        batch = indices[first:first + READ_BATCH]
        for pos, (index, record) in enumerate(zip(batch, job.source.read_many(batch)), start=first):
            yield index, record, _checked(job, index, record, decoded[pos])


class _ShardColumns:
    """The manifest columns of one shard, collected as plain lists and turned into one table.

    Column lists rather than row tuples: a shard's rows live until it ends, and that many surviving
    tuples would make Python's cyclic GC run full collections.
    """

    names = ("key", "label", "source_index", "width", "height", "bytes", "sha256", "ext", "decoded_ok",
             "source_path", "identity")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.columns: dict[str, list] = {name: [] for name in self.names}
        (self._key, self._label, self._index, self._width, self._height, self._bytes, self._sha256,
         self._ext, self._decoded, self._path, self._identity) = (self.columns[name].append for name in self.names)

    def add(self, key: str, label: int, index: int, info: ImageInfo, size: int, sha256: str) -> None:
        """Append one row: the sample's key, label, source index, image info, byte size, digest and
        where it came from (the source's :class:`~fr_data.ingest.source.Origin`)."""
        origin = origin_of(self.source, index, label)
        self._path(None if origin is None else origin.path)
        self._identity(None if origin is None else origin.identity)
        self._key(key)
        self._label(label)
        self._index(index)
        self._width(info.width)
        self._height(info.height)
        self._bytes(size)
        self._sha256(sha256)
        self._ext(info.ext)
        self._decoded(info.decoded_ok)

    def table(self, shard: str) -> pa.Table:
        count = len(self.columns["key"])
        return pa.table({**self.columns, "shard": [shard] * count}, schema=WRITTEN_SAMPLES_SCHEMA)


def _tar_members(label: int, data: bytes, index: int, info: ImageInfo) -> list[tuple[str, bytes]]:
    """A sample's ``(ext, data)`` members in name order (``cls`` < ``jpg`` < ``json`` < ``png``)."""
    # Same bytes as json.dumps(..., sort_keys=True, separators=(",", ":")), without its per-call cost.
    meta = b'{"height":%d,"source_index":%d,"width":%d}' % (info.height, index, info.width)
    if info.ext < "json":
        return [("cls", b"%d" % label), (info.ext, data), ("json", meta)]
    return [("cls", b"%d" % label), ("json", meta), (info.ext, data)]


def write_shard(job: ShardJob, shard_id: int) -> ShardRecord:
    """Write shard ``shard_id`` (tar, then rejected rows, then sample rows as the 'done' marker).

    Records are read in batches in source order and written in the shuffled order; the manifest
    columns are collected as lists and become one Parquet table per shard.
    """
    plan, name = job.plan, job.plan.shard_name(shard_id)
    start, stop = plan.bounds(shard_id)
    indices, decoded = job.order[start:stop].tolist(), plan.decoded(start, stop)
    rows = _ShardColumns(job.source)
    rejected: dict[str, list] = {f.name: [] for f in REJECTED_SCHEMA}
    key_format = f"%0{plan.key_width}d"
    with atomic_path(job.out / name) as tmp, open(tmp, "wb") as stream:
        writer = TarWriter(stream)
        for index, record, info in _inspected(job, indices, decoded):
            if isinstance(info, DataError):
                job.errors.reject(info)
                for column, value in zip(REJECTED_SCHEMA.names, (info.path, index, name, info.where, info.reason)):
                    rejected[column].append(value)
                continue
            key, data = key_format % index, record.data
            writer.add_sample(key, _tar_members(record.label, data, index, info))
            rows.add(key, record.label, index, info, len(data), hashlib.sha256(data).hexdigest())
        digest = writer.finish()
        size = writer.size
    samples = rows.table(name)
    result = ShardRecord(name, samples.num_rows, size, digest, len(rejected["index"]))
    samples_part, rejected_part = part_paths(job.out, name)
    write_table(pa.table(rejected, schema=REJECTED_SCHEMA), rejected_part, REJECTED_SCHEMA)
    write_table(samples, samples_part, SAMPLES_SCHEMA, metadata={"shard": dataclasses.asdict(result)},
                optional=PROVENANCE_SCHEMA)
    return result


def finished_shard(out: Path, name: str) -> ShardRecord | None:
    """The record of a shard a previous run completed, or None if it must be (re)written."""
    samples_part, rejected_part = part_paths(out, name)
    tar = out / name
    if not (samples_part.exists() and rejected_part.exists() and tar.exists()):
        return None
    record = ShardRecord(**read_metadata(samples_part)["shard"])
    return record if tar.stat().st_size == record.bytes else None
