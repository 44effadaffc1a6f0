"""Verifying a finished shard folder against its listing (``shards.json``) and manifest (``samples.parquet``)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.folders.shard_folder import SAMPLES_FILE, SAMPLES_SCHEMA, load_listing
from fr_data.formats.tario import group_members
from fr_data.io.errors import DataError
from fr_data.io.hashing import file_sha256
from fr_data.io.parquet import conform


def _manifest_by_shard(out: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield ``(shard, rows)`` from samples.parquet in file order, one shard at a time."""
    try:
        parquet = pq.ParquetFile(out / SAMPLES_FILE)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(out / SAMPLES_FILE, "", f"not a readable Parquet file: {exc}") from None
    conform(parquet.schema_arrow.empty_table(), SAMPLES_SCHEMA, out / SAMPLES_FILE)
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
        missing = f" (first missing: {rows[count]['key']}.{rows[count]['ext']})" if count < len(rows) else ""
        problems.append(f"{name}: {count} samples in the tar, {len(rows)} in the manifest{missing}")
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
