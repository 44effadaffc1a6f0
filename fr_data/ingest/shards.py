"""WebDataset shards and their Parquet sample manifest: planning, writing, resuming, verifying.

Layout of an output folder ``OUT`` written by :func:`write_shards`::

    OUT/plan.json             the resolved plan and its fingerprint (written first)
    OUT/shard-000000.tar ...  per sample KEY.cls (label, ASCII int), KEY.jpg or KEY.png (the source
                              image bytes, never re-encoded; PNG sources keep the ``.png`` extension),
                              KEY.json ({"source_index", "width", "height"}); KEY = zero-padded source
                              index (no dots)
    OUT/rejected.parquet      records refused with ``skip_corrupt``: the file at fault, source index,
                              shard, locator (key/offset/path) and reason (REJECTED_SCHEMA; empty if none)
    OUT/shards.json           every shard's name, count, bytes, sha256; the plan; the run arguments
    OUT/samples.parquet       one row per stored sample (SAMPLES_SCHEMA), in shard order; written LAST,
                              so its presence marks a finished folder

Samples are shuffled globally with a seeded permutation before they are cut into shards, so every
shard mixes identities; shard ``i`` of ``S`` holds positions ``[i*n//S, (i+1)*n//S)`` of that order, so
counts differ by at most one (minus rejected records). Every file appears under its final name only
when complete (temp + rename). Per-shard sidecar rows in ``OUT/.parts/`` let a rerun skip finished
shards; a rerun with a different plan (source, seed, sizes, limit, decode check) is refused. The worker
count and ``skip_corrupt`` are not part of the plan: they do not change a successful run's output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from fr_data.io.atomic import atomic_path, atomic_write_text, remove_stale_temps
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.parquet import ROW_GROUP_SIZE, conform, read_metadata, read_table, write_table
from fr_data.formats.tario import TarWriter, group_members
from fr_data.io.hashing import file_sha256

FORMAT_VERSION = 2
SHARD_PATTERN = "shard-{:06d}.tar"
DEFAULT_PER_SHARD = 10_000
DEFAULT_DECODE_CHECK = 1.0  # fraction of samples fully decoded with PIL (the rest: header parse only)
READ_BATCH = 1024  # records read per batch, in ascending source order (bounds memory per worker)
TAR_OVERHEAD = 3 * 512 + 2 * 512 + 512  # three headers, small cls/json payloads, average padding

SAMPLES_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
    pa.field("shard", pa.string(), nullable=False),
    pa.field("source_index", pa.int64(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("sha256", pa.string(), nullable=False),
    pa.field("ext", pa.string(), nullable=False),
    # True: fully decoded with PIL, the decoded size equals the header size; null: not decoded (only
    # the header was parsed: the sample is outside the ``decode_check`` fraction). Never False: an
    # image that fails the check is rejected (or aborts the run).
    pa.field("decoded_ok", pa.bool_(), nullable=True),
])

REJECTED_SCHEMA = pa.schema([
    pa.field("source", pa.string(), nullable=False),
    pa.field("index", pa.int64(), nullable=False),
    pa.field("shard", pa.string(), nullable=False),
    pa.field("where", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
])

_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless...); C4/C8/CC are DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD9)) | {0x01}  # RSTn, SOI, TEM: markers without a length
_SOS = 0xDA  # start of scan
_LENGTH_SEGMENTS = frozenset(range(0x100)) - _SOF - _STANDALONE - {0xFF, _SOS}  # APPn, DQT, DHT, COM...
_SOF_SIZE = struct.Struct(">HH")  # height, width (after the precision byte)


# ----------------------------------------------------------------------------------------------- images
class ImageInfo(NamedTuple):
    """What the sharder learns about one image: stored extension, header size, decode check.

    A NamedTuple rather than a frozen dataclass: one is built per image, and this is cheaper.
    """

    ext: str
    width: int
    height: int
    decoded_ok: bool | None


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


def header_size(data: bytes) -> tuple[str, tuple[int, int] | None] | None:
    """``(ext, (width, height) or None)`` read from the JPEG/PNG header; None when neither format."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg", jpeg_size(data)
    if data.startswith(_PNG):
        ok = len(data) >= 24 and data[12:16] == b"IHDR"
        return "png", (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) if ok else None
    return None


def inspect_image(data: bytes, path: str | os.PathLike, where: str, decode: bool = True) -> ImageInfo:
    """Identify a JPEG/PNG by its magic bytes, read its size from the header, optionally decode it.

    With ``decode`` the image is fully decoded with PIL and the decoded size must equal the size
    parsed from the header (``decoded_ok`` True); without it ``decoded_ok`` is None.

    Raises:
        DataError: naming ``path`` and ``where`` when the bytes are no JPEG/PNG, have no readable
            size header, do not decode, or decode to another size.
    """
    found = header_size(data)
    if found is None:
        raise DataError(path, where, f"not a JPEG or PNG image (starts with {data[:8]!r})")
    ext, size = found
    if size is None:
        raise DataError(path, where, f"{ext} image without a readable size header")
    if not decode:
        return ImageInfo(ext, size[0], size[1], None)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            decoded = img.im.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(path, where, f"image does not decode: {exc}") from None
    if decoded != size:
        raise DataError(path, where, f"decoded size {decoded} differs from header size {size}")
    return ImageInfo(ext, size[0], size[1], True)


# ------------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class ShardOptions:
    """How to cut a source into shards (everything here except ``skip_corrupt`` is in the plan).

    Args:
        per_shard: samples per shard (default 10,000 when ``shard_bytes`` is not given either).
        shard_bytes: target bytes per shard instead; estimated from the first 256 records of the order.
        seed: seed of the global permutation.
        multiple_of: round the shard count up to a multiple of this (world_size x loader workers).
        limit: keep only the first ``limit`` samples of the permuted order (a random subset).
        decode_check: fraction in [0, 1] of samples fully decoded with PIL (True = 1, False = 0). Every
            image's JPEG/PNG header is parsed for its size; the decoded ones must also decode to that
            size. The sample at position ``p`` of the global order is decoded when
            ``floor((p + 1) * f) > floor(p * f)``: evenly spread and independent of the worker count.
        skip_corrupt: record bad records in ``rejected.parquet`` and go on, instead of aborting.
    """

    per_shard: int | None = None
    shard_bytes: int | None = None
    seed: int = 0
    multiple_of: int = 1
    limit: int | None = None
    decode_check: float = DEFAULT_DECODE_CHECK
    skip_corrupt: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "decode_check", float(self.decode_check))
        if not 0.0 <= self.decode_check <= 1.0:
            raise ConfigError(f"decode_check is a fraction in [0, 1], got {self.decode_check}")
        if self.per_shard is not None and self.shard_bytes is not None:
            raise ConfigError("give per_shard or shard_bytes, not both")
        for name in ("per_shard", "shard_bytes", "multiple_of", "limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class ShardPlan:
    """The fully resolved plan; its fingerprint guards resumption."""

    source: str
    source_count: int
    source_digest: str
    num_classes: int
    seed: int
    limit: int | None
    num_samples: int
    num_shards: int
    key_width: int
    decode_check: float
    format_version: int = FORMAT_VERSION

    def fingerprint(self) -> str:
        """sha256 of the plan's canonical JSON."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def shard_name(self, shard_id: int) -> str:
        return SHARD_PATTERN.format(shard_id)

    def bounds(self, shard_id: int) -> tuple[int, int]:
        """Positions ``[start, stop)`` of the permuted order that go into shard ``shard_id``."""
        n, s = self.num_samples, self.num_shards
        return shard_id * n // s, (shard_id + 1) * n // s

    def key(self, source_index: int) -> str:
        return f"{source_index:0{self.key_width}d}"

    def decoded(self, start: int, stop: int) -> list[bool]:
        """Which positions in ``[start, stop)`` of the global order get the full decode check."""
        positions = np.arange(start, stop + 1, dtype=np.float64) * self.decode_check
        return (np.diff(np.floor(positions)) > 0).tolist()


def permuted_order(indices: np.ndarray, seed: int, limit: int | None) -> np.ndarray:
    """Source indices in the seeded global order (first ``limit`` of them)."""
    order = np.asarray(indices, dtype=np.int64)[np.random.default_rng(seed).permutation(len(indices))]
    return order if limit is None else order[:limit]


def make_plan(source: Any, options: ShardOptions) -> tuple[ShardPlan, np.ndarray]:
    """Resolve ``options`` against ``source``: the plan and the permuted order of source indices."""
    indices = np.asarray(source.indices(), dtype=np.int64)
    if len(indices) == 0:
        raise DataError(source.path, "", "source holds no images")
    order = permuted_order(indices, options.seed, options.limit)
    per_shard = options.per_shard or _per_shard_from_bytes(source, order, options.shard_bytes)
    num_shards = math.ceil(len(order) / per_shard)
    num_shards = math.ceil(num_shards / options.multiple_of) * options.multiple_of
    if num_shards > len(order):
        raise ConfigError(f"{num_shards} shards (a multiple of {options.multiple_of}) need at least as many "
                          f"samples, but only {len(order)} are planned")
    plan = ShardPlan(
        source=str(Path(source.path).resolve()), source_count=len(indices),
        source_digest=hashlib.sha256(indices.tobytes()).hexdigest(), num_classes=int(source.num_classes),
        seed=options.seed, limit=options.limit, num_samples=len(order), num_shards=num_shards,
        key_width=max(9, len(str(int(indices.max())))), decode_check=options.decode_check)
    return plan, order


def _per_shard_from_bytes(source: Any, order: np.ndarray, shard_bytes: int | None) -> int:
    """Samples per shard: ``DEFAULT_PER_SHARD``, or ``shard_bytes`` over the mean size of 256 records."""
    if shard_bytes is None:
        return DEFAULT_PER_SHARD
    sizes = []
    for index in order[:256]:
        try:
            sizes.append(len(source.read(int(index)).data) + TAR_OVERHEAD)
        except DataError:
            continue  # only an estimate; the writing pass reports (or aborts on) every bad record
    mean = float(np.mean(sizes)) if sizes else float(TAR_OVERHEAD)
    return max(1, int(shard_bytes // mean))


# ------------------------------------------------------------------------------------ writing one shard
@dataclass(frozen=True)
class ShardRecord:
    """One finished shard as listed in ``shards.json``."""

    name: str
    count: int
    bytes: int
    sha256: str
    rejected: int


@dataclass
class _Job:
    source: Any
    plan: ShardPlan
    order: np.ndarray
    out: Path
    skip_corrupt: bool


def _parts(out: Path) -> Path:
    return out / ".parts"


def _part_paths(out: Path, name: str) -> tuple[Path, Path]:
    stem = name.removesuffix(".tar")
    return _parts(out) / f"{stem}.samples.parquet", _parts(out) / f"{stem}.rejected.parquet"


def record_file(source: Any, index: int) -> tuple[Path, str]:
    """The file holding record ``index`` and its locator there, for error messages.

    An image folder's image (``index N``), else a RecordIO ``.rec`` or the source path (``key N``).
    """
    if hasattr(source, "file_path"):
        return Path(source.file_path(index)), f"index {index}"
    return Path(getattr(source, "rec_path", source.path)), f"key {index}"


def read_batch(source: Any, indices: list[int]) -> list[Any]:
    """``source.read`` of each index, as a record or the :class:`DataError` it raised, in input order.

    A source with ``read_many`` (RecordIO) reads the whole batch in one call, in file order.
    Otherwise (image folders) the reads go one by one in ascending index order, so a shuffled shard
    is read as sequentially as the source allows.
    """
    read_many = getattr(source, "read_many", None)
    if read_many is not None:
        return read_many(indices)
    results: list[Any] = [None] * len(indices)
    for pos in sorted(range(len(indices)), key=indices.__getitem__):
        try:
            results[pos] = source.read(indices[pos])
        except DataError as exc:
            results[pos] = exc
    return results


def _checked(job: _Job, index: int, record: Any, decode: bool) -> ImageInfo | DataError:
    """The image info of a read record, or the DataError (file + locator) of a bad read or image."""
    if isinstance(record, DataError):
        return record
    try:
        return inspect_image(record.data, "", "", decode)
    except DataError as exc:
        return DataError(*record_file(job.source, index), exc.reason)


def _inspected(job: _Job, indices: list[int], decoded: list[bool]) -> Iterator[tuple[int, Any, Any]]:
    """``(index, record, ImageInfo or DataError)`` per index, in order.

    Reads :data:`READ_BATCH` records at a time, in source order (bounded memory per worker).
    """
    for first in range(0, len(indices), READ_BATCH):
        batch = indices[first:first + READ_BATCH]
        for pos, (index, record) in enumerate(zip(batch, read_batch(job.source, batch)), start=first):
            yield index, record, _checked(job, index, record, decoded[pos])


class _ShardColumns:
    """The manifest columns of one shard, collected as plain lists and turned into one table.

    Column lists rather than row tuples: a shard's rows live until it ends, and that many surviving
    tuples would make Python's cyclic GC run full collections.
    """

    names = ("key", "label", "source_index", "width", "height", "bytes", "sha256", "ext", "decoded_ok")

    def __init__(self) -> None:
        self.columns: dict[str, list] = {name: [] for name in self.names}
        (self._key, self._label, self._index, self._width, self._height, self._bytes, self._sha256,
         self._ext, self._decoded) = (self.columns[name].append for name in self.names)

    def add(self, key: str, label: int, index: int, info: ImageInfo, size: int, sha256: str) -> None:
        """Append one row: the sample's key, label, source index, image info, byte size and digest."""
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
        return pa.table({**self.columns, "shard": [shard] * count}, schema=SAMPLES_SCHEMA)


def _tar_members(label: int, data: bytes, index: int, info: ImageInfo) -> list[tuple[str, bytes]]:
    """A sample's ``(ext, data)`` members in name order (``cls`` < ``jpg`` < ``json`` < ``png``)."""
    # Same bytes as json.dumps(..., sort_keys=True, separators=(",", ":")), without its per-call cost.
    meta = b'{"height":%d,"source_index":%d,"width":%d}' % (info.height, index, info.width)
    if info.ext < "json":
        return [("cls", b"%d" % label), (info.ext, data), ("json", meta)]
    return [("cls", b"%d" % label), ("json", meta), (info.ext, data)]


def write_shard(job: _Job, shard_id: int) -> ShardRecord:
    """Write shard ``shard_id`` (tar, then rejected rows, then sample rows as the 'done' marker).

    Records are read in batches in source order and written in the shuffled order; the manifest
    columns are collected as lists and become one Parquet table per shard.
    """
    plan, name = job.plan, job.plan.shard_name(shard_id)
    start, stop = plan.bounds(shard_id)
    indices, decoded = job.order[start:stop].tolist(), plan.decoded(start, stop)
    rows = _ShardColumns()
    rejected: dict[str, list] = {f.name: [] for f in REJECTED_SCHEMA}
    key_format = f"%0{plan.key_width}d"
    with atomic_path(job.out / name) as tmp, open(tmp, "wb") as stream:
        writer = TarWriter(stream)
        for index, record, info in _inspected(job, indices, decoded):
            if isinstance(info, DataError):
                if not job.skip_corrupt:
                    raise info
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
    samples_part, rejected_part = _part_paths(job.out, name)
    write_table(pa.table(rejected, schema=REJECTED_SCHEMA), rejected_part, REJECTED_SCHEMA)
    write_table(samples, samples_part, SAMPLES_SCHEMA, metadata={"shard": dataclasses.asdict(result)})
    return result


def finished_shard(out: Path, name: str) -> ShardRecord | None:
    """The record of a shard a previous run completed, or None if it must be (re)written."""
    samples_part, rejected_part = _part_paths(out, name)
    tar = out / name
    if not (samples_part.exists() and rejected_part.exists() and tar.exists()):
        return None
    record = ShardRecord(**read_metadata(samples_part)["shard"])
    return record if tar.stat().st_size == record.bytes else None


# ---------------------------------------------------------------------------------- running the plan
_WORKER_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job


def _run_in_worker(shard_id: int) -> ShardRecord | tuple[str, str, str]:
    """Pool task; a DataError comes back as a tuple (its custom __init__ does not survive pickling)."""
    try:
        return write_shard(_WORKER_JOB, shard_id)
    except DataError as exc:
        return (exc.path, exc.where, exc.reason)


def _run_pending(job: _Job, pending: list[int], workers: int,
                 progress: Callable[[ShardRecord], None]) -> None:
    if workers <= 1 or len(pending) <= 1:
        for shard_id in pending:
            progress(write_shard(job, shard_id))
        return
    ctx = multiprocessing.get_context("fork")  # the source object is inherited, never pickled
    with ctx.Pool(min(workers, len(pending)), initializer=_init_worker, initargs=(job,)) as pool:
        for result in pool.imap_unordered(_run_in_worker, pending):
            if isinstance(result, tuple):
                pool.terminate()
                pool.join()
                remove_stale_temps(job.out)  # temp files of the shards the other workers were writing
                raise DataError(*result)
            progress(result)


@dataclass
class ShardRun:
    """What :func:`write_shards` did."""

    out: Path
    plan: ShardPlan
    shards: list[ShardRecord]
    resumed: int = 0
    already_complete: bool = False
    rejected: pa.Table = field(default_factory=lambda: REJECTED_SCHEMA.empty_table())

    @property
    def num_samples(self) -> int:
        return sum(s.count for s in self.shards)


def write_shards(source: Any, out: str | os.PathLike, options: ShardOptions | None = None, *,
                 workers: int = 1, args: dict[str, Any] | None = None,
                 progress: Callable[[ShardRecord], None] | None = None) -> ShardRun:
    """Shard ``source`` into ``out``, resuming a previous run with the same plan.

    Args:
        source: a ``fr_data.ingest.sources.Source`` (``path``, ``num_classes``, ``indices()``, ``read(i)``).
        out: output folder (created if needed).
        options: the sharding options.
        workers: processes writing whole shards in parallel (forked; the source is inherited).
        args: the resolved command-line arguments, stored in ``shards.json``.
        progress: called once per shard as it completes (including shards found finished).

    Raises:
        ConfigError: ``out`` holds a different plan or unrelated files.
        DataError: the first bad record (file + key) unless ``options.skip_corrupt``.
    """
    options = options or ShardOptions()
    out = Path(out)
    plan, order = make_plan(source, options)
    if _claim_folder(out, plan):
        return _completed_run(out, plan)
    job = _Job(source, plan, order, out, options.skip_corrupt)
    report = progress or (lambda record: None)
    done = {i: finished_shard(out, plan.shard_name(i)) for i in range(plan.num_shards)}
    for record in filter(None, done.values()):
        report(record)
    pending = [i for i, record in done.items() if record is None]
    _run_pending(job, pending, workers, report)
    shards = [finished_shard(out, plan.shard_name(i)) for i in range(plan.num_shards)]
    if any(s is None for s in shards):
        raise RuntimeError(f"{out}: some shards were not written; rerun to resume")
    rejected = _finalize(out, plan, shards, args or {})
    return ShardRun(out, plan, shards, resumed=plan.num_shards - len(pending), rejected=rejected)


def _claim_folder(out: Path, plan: ShardPlan) -> bool:
    """Check or write ``plan.json``; return True when ``out`` already holds this plan's finished output."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    remove_stale_temps(_parts(out))
    plan_file = out / "plan.json"
    if plan_file.exists():
        stored = json.loads(plan_file.read_text())
        if stored.get("fingerprint") != plan.fingerprint():
            diff = {k: (v, stored.get("plan", {}).get(k)) for k, v in dataclasses.asdict(plan).items()
                    if stored.get("plan", {}).get(k) != v}
            raise ConfigError(f"{out} was started with a different plan; rerun with the same arguments or use "
                              f"a new output folder. Differences (now, before): {diff}")
        return (out / "samples.parquet").exists()
    if any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no plan.json; refusing to write shards into it")
    atomic_write_text(plan_file, json.dumps({"fingerprint": plan.fingerprint(),
                                             "plan": dataclasses.asdict(plan)}, indent=2, sort_keys=True))
    _parts(out).mkdir(exist_ok=True)
    return False


def _completed_run(out: Path, plan: ShardPlan) -> ShardRun:
    listing = json.loads((out / "shards.json").read_text())
    shards = [ShardRecord(**s) for s in listing["shards"]]
    shutil.rmtree(_parts(out), ignore_errors=True)
    rejected = read_table(out / "rejected.parquet", REJECTED_SCHEMA)
    return ShardRun(out, plan, shards, resumed=len(shards), already_complete=True, rejected=rejected)


def _finalize(out: Path, plan: ShardPlan, shards: list[ShardRecord], args: dict[str, Any]) -> pa.Table:
    """Write rejected.parquet, shards.json, then samples.parquet (last); drop the sidecars."""
    rejected_parts = [_part_paths(out, s.name)[1] for s in shards]
    rejected = pa.concat_tables([read_table(p, REJECTED_SCHEMA) for p in rejected_parts])
    write_table(rejected, out / "rejected.parquet", REJECTED_SCHEMA)
    listing = {"format_version": FORMAT_VERSION, "fingerprint": plan.fingerprint(),
               "plan": dataclasses.asdict(plan), "args": args,
               "num_samples": sum(s.count for s in shards), "num_rejected": rejected.num_rows,
               "shards": [dataclasses.asdict(s) for s in shards]}
    atomic_write_text(out / "shards.json", json.dumps(listing, indent=2, sort_keys=True, default=str))
    _concat_parquet([_part_paths(out, s.name)[0] for s in shards], out / "samples.parquet", SAMPLES_SCHEMA)
    shutil.rmtree(_parts(out), ignore_errors=True)
    return rejected


def _concat_parquet(parts: list[Path], target: Path, schema: pa.Schema) -> None:
    """Stream Parquet parts (validated one by one) into one file, atomically; memory = one part."""
    with atomic_path(target) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for part in parts:
                writer.write_table(read_table(part, schema), row_group_size=ROW_GROUP_SIZE)


def read_samples(out: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """Read and validate ``OUT/samples.parquet``."""
    return read_table(Path(out) / "samples.parquet", SAMPLES_SCHEMA, columns=columns)


def load_listing(out: str | os.PathLike) -> dict[str, Any]:
    """``OUT/shards.json`` of a finished folder (DataError when sharding did not finish)."""
    path = Path(out) / "shards.json"
    if not (path.exists() and (Path(out) / "samples.parquet").exists()):
        raise DataError(out, "", "no shards.json/samples.parquet: sharding did not finish here")
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------- verifying
def _manifest_by_shard(out: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield ``(shard, rows)`` from samples.parquet in file order, one shard at a time."""
    try:
        parquet = pq.ParquetFile(out / "samples.parquet")
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(out / "samples.parquet", "", f"not a readable Parquet file: {exc}") from None
    conform(parquet.schema_arrow.empty_table(), SAMPLES_SCHEMA, out / "samples.parquet")
    current, rows = None, []
    wanted = ["key", "label", "shard", "source_index", "width", "height", "bytes", "sha256", "ext"]
    for batch in parquet.iter_batches(batch_size=65_536, columns=wanted):
        for row in batch.to_pylist():
            if row["shard"] != current and current is not None:
                yield current, rows
                rows = []
            current = row["shard"]
            rows.append(row)
    if current is not None:
        yield current, rows


def _check_sample(shard: str, row: dict[str, Any], members: dict[str, bytes]) -> list[str]:
    key, problems = row["key"], []
    image = members.get(row["ext"])
    if image is None:
        return [f"{shard}: sample {key} has no .{row['ext']} member (has {sorted(members)})"]
    if hashlib.sha256(image).hexdigest() != row["sha256"] or len(image) != row["bytes"]:
        problems.append(f"{shard}: sample {key} image bytes differ from the manifest (sha256/size)")
    if members.get("cls", b"").strip() != str(row["label"]).encode():
        problems.append(f"{shard}: sample {key} label {members.get('cls')!r} != manifest {row['label']}")
    try:
        meta = json.loads(members.get("json", b"null"))
    except ValueError:
        meta = None
    expected = {"source_index": row["source_index"], "width": row["width"], "height": row["height"]}
    if meta != expected:
        problems.append(f"{shard}: sample {key} json {meta} != manifest {expected}")
    return problems


MAX_PROBLEMS_PER_SHARD = 20


def _check_members(name: str, path: Path, rows: list[dict[str, Any]]) -> list[str]:
    """Walk the tar and the manifest rows side by side (one sample in memory at a time)."""
    problems: list[str] = []
    count = 0
    try:
        for count, (key, members) in enumerate(group_members(path), start=1):
            if len(problems) >= MAX_PROBLEMS_PER_SHARD:
                return problems + [f"{name}: stopped after {MAX_PROBLEMS_PER_SHARD} problems"]
            row = rows[count - 1] if count <= len(rows) else None
            if row is None or row["key"] != key:
                expected = row["key"] if row else "no more samples"
                problems.append(f"{name}: sample {count} has key {key}, the manifest has {expected}")
                continue
            problems += _check_sample(name, row, members)
    except DataError as exc:
        return problems + [f"{name}: unreadable: {exc}"]
    if count != len(rows):
        problems.append(f"{name}: {count} samples in the tar, {len(rows)} in the manifest")
    return problems


def _check_shard(out: Path, record: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    name, path = record["name"], out / record["name"]
    if not path.exists():
        return [f"{name}: missing"]
    problems = []
    if path.stat().st_size != record["bytes"]:
        problems.append(f"{name}: {path.stat().st_size} bytes, shards.json says {record['bytes']}")
    if file_sha256(path) != record["sha256"]:
        problems.append(f"{name}: sha256 differs from shards.json")
    if record["count"] != len(rows):
        problems.append(f"{name}: shards.json count {record['count']} != {len(rows)} manifest rows")
    return problems + _check_members(name, path, rows)


def verify_shards(out: str | os.PathLike) -> list[str]:
    """Check every shard of a finished folder against shards.json and samples.parquet.

    Compares, per shard: presence, size and sha256 (shards.json), the ordered keys and count, and per
    sample the image sha256/size, label and json metadata (samples.parquet). Also flags tar files on disk
    that no listing names. Memory: one shard's manifest rows at a time.

    Returns:
        A list of human-readable mismatches (empty when everything matches).
    """
    out = Path(out)
    listing = load_listing(out)
    records = {s["name"]: s for s in listing["shards"]}
    problems: list[str] = []
    checked: set[str] = set()
    for shard, rows in _manifest_by_shard(out):
        if shard not in records:
            problems.append(f"{shard}: in samples.parquet but not in shards.json")
            continue
        if shard in checked:
            problems.append(f"{shard}: manifest rows of this shard are not contiguous")
            continue
        checked.add(shard)
        problems += _check_shard(out, records[shard], rows)
    for name in sorted(set(records) - checked):
        problems += _check_shard(out, records[name], [])
    stray = sorted(p.name for p in out.glob("*.tar") if p.name not in records)
    problems += [f"{name}: tar file not listed in shards.json" for name in stray]
    return problems
