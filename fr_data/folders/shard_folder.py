"""The shard folder: WebDataset tar shards and their Parquet sample manifest.

Layout of a folder ``OUT`` written by :func:`fr_data.ingest.sharding.write_shards`::

    OUT/plan.json             the resolved plan and its fingerprint (written first)
    OUT/shard-000000.tar ...  per sample KEY.cls (label, ASCII int), KEY.jpg or KEY.png (the source
                              image bytes, never re-encoded; PNG sources keep the ``.png`` extension),
                              KEY.json ({"source_index", "width", "height"}); KEY = zero-padded source
                              index (no dots)
    OUT/rejected.parquet      records refused under ``--skip-corrupt`` and what the source left out while
                              opening: the file at fault, source index, shard, locator (key/offset/path)
                              and reason (REJECTED_SCHEMA; empty if none)
    OUT/shards.json           every shard's name, count, bytes, sha256; the plan; the run arguments
    OUT/samples.parquet       one row per stored sample (SAMPLES_SCHEMA, then the PROVENANCE_SCHEMA columns
                              ``source_path``, ``identity``: where the image came from; folders sharded
                              before they existed lack them), in shard order; written LAST, so its
                              presence marks a finished folder
    OUT/.parts/               per-shard sidecar tables of an unfinished run (resumption)
    OUT/shard_index.parquet   optional cache of random-access offsets (SHARD_INDEX_SCHEMA), written by
                              :mod:`fr_data.loading.shard_index` on first use
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.io.atomic import atomic_write_text
from fr_data.io.errors import DataError
from fr_data.io.parquet import read_table, require_non_negative, require_unique

FORMAT_VERSION = 2
SHARD_PATTERN = "shard-{:06d}.tar"
PLAN_FILE = "plan.json"
LISTING_FILE = "shards.json"
SAMPLES_FILE = "samples.parquet"
REJECTED_FILE = "rejected.parquet"
PARTS_DIR = ".parts"
SHARD_INDEX_FILE = "shard_index.parquet"
SHARD_INDEX_VERSION = 2  # 2: built with every shard checked against samples.parquet

#: One row per stored sample, in shard order.
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

#: Where each sample came from (optional: shard folders written before these columns lack them, and a
#: source that cannot say leaves them null): the image's path relative to the image folder's root
#: (``0000045/001.jpg``) or the ``.rec`` file name and record key (``train.rec#1234``); the identity folder
#: name, or the RecordIO label as text.
PROVENANCE_SCHEMA = pa.schema([
    pa.field("source_path", pa.string(), nullable=True),
    pa.field("identity", pa.string(), nullable=True),
])
#: Every column a newly written ``samples.parquet`` has.
WRITTEN_SAMPLES_SCHEMA = pa.schema([*SAMPLES_SCHEMA, *PROVENANCE_SCHEMA])

#: One row per record refused under ``--skip-corrupt``, and per thing the source left out while opening
#: (a damaged span or bad index line of a RecordIO file, a non-image file of an image folder): those
#: rows have no ``shard`` (null), and ``index`` is null when no key is known.
REJECTED_SCHEMA = pa.schema([
    pa.field("source", pa.string(), nullable=False),
    pa.field("index", pa.int64(), nullable=True),
    pa.field("shard", pa.string(), nullable=True),
    pa.field("where", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
])


def rejected_rows(rows: list[tuple[str, int | None, str | None, str, str]]) -> pa.Table:
    """A REJECTED_SCHEMA table of ``(source, index, shard, where, reason)`` rows."""
    columns = list(zip(*rows)) if rows else [[] for _ in REJECTED_SCHEMA]
    return pa.table([pa.array(list(c), f.type) for c, f in zip(columns, REJECTED_SCHEMA)], schema=REJECTED_SCHEMA)

#: The random-access cache: one row per sample, where its members lie and where its image bytes are.
SHARD_INDEX_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("shard", pa.string(), nullable=False),
    pa.field("start", pa.int64(), nullable=False),   # offset of the sample's first header
    pa.field("stop", pa.int64(), nullable=False),    # offset just past its last member's padding
    pa.field("ext", pa.string(), nullable=False),    # image member extension
    pa.field("offset", pa.int64(), nullable=False),  # image data offset
    pa.field("size", pa.int64(), nullable=False),    # image data size
])


def shard_name(shard_id: int) -> str:
    """File name of shard ``shard_id``."""
    return SHARD_PATTERN.format(shard_id)


def samples_path(folder: str | os.PathLike) -> Path:
    """``folder/samples.parquet`` (whether or not it exists yet)."""
    return Path(folder) / SAMPLES_FILE


def is_finished(folder: str | os.PathLike) -> bool:
    """True when sharding finished here (``shards.json`` and, written last, ``samples.parquet``)."""
    folder = Path(folder)
    return (folder / LISTING_FILE).exists() and (folder / SAMPLES_FILE).exists()


def read_samples(folder: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """Read and validate ``folder/samples.parquet`` (with the provenance columns when it has them)."""
    return read_table(samples_path(folder), SAMPLES_SCHEMA, columns=columns, optional=PROVENANCE_SCHEMA)


def has_provenance(path: str | os.PathLike) -> bool:
    """True when the shard manifest ``path`` has the ``source_path`` and ``identity`` columns."""
    return set(PROVENANCE_SCHEMA.names) <= set(pq.read_schema(path).names)


def read_provenance(path: str | os.PathLike) -> pa.Table | None:
    """``key, label, source_path, identity`` of the shard manifest ``path`` (a ``samples.parquet``), or
    None when it was written before the provenance columns existed.

    Raises:
        SchemaError: (a DataError) the manifest's columns are malformed (file and row named).
    """
    if not has_provenance(path):
        return None
    return read_input_samples(path, ["key", "label", *PROVENANCE_SCHEMA.names])


def read_input_samples(path: str | os.PathLike, columns: list[str]) -> pa.Table:
    """A shard manifest fed to training or mining: ``columns`` checked against SAMPLES_SCHEMA (types and
    nulls), keys and source indices unique, labels non-negative; every error names the file and row.

    Raises:
        SchemaError: (a DataError) naming ``path`` and the column and row at fault.
    """
    table = read_table(path, SAMPLES_SCHEMA, columns=columns, optional=PROVENANCE_SCHEMA)
    for column in ("key", "source_index"):
        if column in columns:
            require_unique(table, column, path)
    if "label" in columns:
        require_non_negative(table, "label", path)
    return table


def manifest_keys_by_shard(folder: str | os.PathLike) -> dict[str, tuple[list[str], list[str]]] | None:
    """``{shard file name: (keys, image extensions)}`` in the order ``samples.parquet`` lists them: what
    each shard must hold. None when the folder has no manifest or the manifest has no ``shard`` column
    (a bare set of tars, or a hand-made manifest of keys and labels): then there is nothing to agree with.

    Extensions are empty strings when the manifest has no ``ext`` column.

    Raises:
        SchemaError: (a DataError) the manifest's ``key``/``shard``/``ext`` columns are malformed.
    """
    path = samples_path(folder)
    if not path.is_file():
        return None
    names = set(pq.read_schema(path).names)
    if not {"key", "shard"} <= names:
        return None
    columns = [c for c in ("key", "shard", "ext") if c in names]
    table = read_table(path, SAMPLES_SCHEMA, columns=columns)
    shards = [s.rsplit("/", 1)[-1] for s in table.column("shard").to_pylist()]
    keys = table.column("key").to_pylist()
    exts = table.column("ext").to_pylist() if "ext" in names else [""] * len(keys)
    out: dict[str, tuple[list[str], list[str]]] = {}
    for key, shard, ext in zip(keys, shards, exts):
        listed = out.setdefault(shard, ([], []))
        listed[0].append(key)
        listed[1].append(ext)
    return out


def read_rejected(folder: str | os.PathLike) -> pa.Table:
    """Read and validate ``folder/rejected.parquet``."""
    return read_table(Path(folder) / REJECTED_FILE, REJECTED_SCHEMA)


def load_listing(folder: str | os.PathLike) -> dict[str, Any]:
    """``folder/shards.json`` of a finished folder (DataError when sharding did not finish)."""
    if not is_finished(folder):
        raise DataError(folder, "", "no shards.json/samples.parquet: sharding did not finish here")
    return json.loads((Path(folder) / LISTING_FILE).read_text())


def fingerprint(folder: str | os.PathLike) -> str | None:
    """The identity of a finished shard folder's content: sha256 of the name, sample count, size and
    content sha256 of every shard ``shards.json`` lists, in order (paths and run arguments left out, so a
    moved or copied folder keeps it). None when the folder has no ``shards.json`` (a bare set of tars).

    Recorded in ``EMB/run.json`` by embedding (``shards_fingerprint``) and compared by mining and the
    review page, so a manifest of another data set is refused even when its keys overlap.
    """
    path = Path(folder) / LISTING_FILE
    if not path.is_file():
        return None
    try:
        shards = json.loads(path.read_text())["shards"]
        rows = [[s["name"], s["count"], s["bytes"], s["sha256"]] for s in shards]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(path, "", f"not a shard listing ({type(exc).__name__}: {exc})") from None
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def write_listing(folder: str | os.PathLike, listing: dict[str, Any]) -> None:
    """Write ``folder/shards.json`` atomically."""
    atomic_write_text(Path(folder) / LISTING_FILE, json.dumps(listing, indent=2, sort_keys=True, default=str))


def read_plan(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The stored ``plan.json`` (``{"fingerprint", "plan"}``), or None when there is none."""
    path = Path(folder) / PLAN_FILE
    return json.loads(path.read_text()) if path.exists() else None


def write_plan(folder: str | os.PathLike, fingerprint: str, plan: dict[str, Any]) -> None:
    """Write ``folder/plan.json`` atomically."""
    atomic_write_text(Path(folder) / PLAN_FILE,
                      json.dumps({"fingerprint": fingerprint, "plan": plan}, indent=2, sort_keys=True))


def parts_dir(folder: str | os.PathLike) -> Path:
    """The sidecar folder of an unfinished run."""
    return Path(folder) / PARTS_DIR


def part_paths(folder: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Sidecar sample rows and rejected rows of shard ``name``."""
    stem = name.removesuffix(".tar")
    parts = parts_dir(folder)
    return parts / f"{stem}.samples.parquet", parts / f"{stem}.rejected.parquet"


def list_shards(folder: str | os.PathLike) -> list[Path]:
    """The shards of ``folder`` in order: those listed in shards.json, else every ``*.tar`` sorted.

    Raises:
        DataError: the folder holds an unfinished sharding run (plan.json without shards.json), or no tar.
    """
    folder = Path(folder)
    listing = folder / LISTING_FILE
    if listing.exists():
        return [folder / s["name"] for s in json.loads(listing.read_text())["shards"]]
    if (folder / PLAN_FILE).exists():
        raise DataError(folder, "", "sharding did not finish here (plan.json without shards.json); rerun it")
    shards = sorted(folder.glob("*.tar"))
    if not shards:
        raise DataError(folder, "", "no shard (*.tar) found")
    return shards


def listed_counts(folder: str | os.PathLike) -> dict[str, int]:
    """Samples per shard name as ``shards.json`` lists them (empty when there is no listing)."""
    path = Path(folder) / LISTING_FILE
    listed = json.loads(path.read_text())["shards"] if path.exists() else []
    return {s["name"]: s["count"] for s in listed}
