"""Thumbnails of the shown samples, read by key through random access into the shards (never a full pass).

The shard folder's key index (``fr_data.loading.shard_index``: ``shard_index.parquet``, built once from the tar
headers and cached beside the shards, as the training loader does) is queried with DuckDB for the wanted
keys only, so the lookup holds the shown rows, not the whole index. Each image is one ``pread`` of its
bytes; decoding and resizing run in a small thread pool (Pillow releases the GIL while it works).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from fr_data.folders.report_folder import thumb_name
from fr_data.folders.shard_folder import SHARD_INDEX_FILE, SHARD_INDEX_SCHEMA, SHARD_INDEX_VERSION, list_shards
from fr_data.io.atomic import naming_write_errors
from fr_data.io.parquet import read_metadata
from fr_data.loading.shard_index import ShardIndex, load_or_build, shard_stamps
from fr_data.query.readonly import INTERNAL, connect

THUMB_SIZE = 112
JPEG_QUALITY = 85
BATCH = 64


def _cache_current(folder: Path, shards: list[Path]) -> bool:
    path = folder / SHARD_INDEX_FILE
    if not path.is_file():
        return False
    meta = read_metadata(path)
    return meta.get("version") == SHARD_INDEX_VERSION and meta.get("shards") == shard_stamps(shards)


def index_rows(folder: str | os.PathLike, keys: Iterable[str]) -> tuple[list[Path], pa.Table]:
    """The shard paths and the ``SHARD_INDEX_SCHEMA`` rows of ``keys`` (keys the shards lack have no row).

    The cached index is built first when missing or stale (one scan of the tar headers).
    """
    folder, wanted = Path(folder), pa.table({"key": pa.array(sorted(set(keys)), pa.string())})
    shards = list_shards(folder)
    if not _cache_current(folder, shards):
        table = load_or_build(folder, shards)
        if not _cache_current(folder, shards):  # not writable here: filter the scan in memory
            return shards, table.filter(pc.is_in(table.column("key"), value_set=wanted.column("key")))
    index_file = folder / SHARD_INDEX_FILE
    con = connect([index_file], INTERNAL, spill=True)
    con.register("wanted", wanted)
    con.read_parquet(str(index_file)).create_view("shard_index")
    rows = con.sql("SELECT * FROM shard_index WHERE key IN (SELECT key FROM wanted)")
    table = rows.to_arrow_table().cast(SHARD_INDEX_SCHEMA)
    con.close()
    return shards, table


@dataclass
class Located:
    """Random access to the found keys, and the keys the shards do not hold."""

    index: ShardIndex
    missing: list[str]


def locate(folder: str | os.PathLike, keys: Iterable[str]) -> Located:
    """Look ``keys`` up in a shard folder's index."""
    keys = sorted(set(keys))
    shards, table = index_rows(folder, keys)
    found = set(table.column("key").to_pylist())
    return Located(ShardIndex(shards, table), [k for k in keys if k not in found])


def make_thumbnail(data: bytes, size: int = THUMB_SIZE) -> bytes:
    """A JPEG at most ``size`` pixels on its longer side (smaller images are kept at their size).

    Raises:
        OSError: the bytes are not an image Pillow can decode.
    """
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale directly
        rgb = im.convert("RGB")
    rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _thumb_or_reason(data: bytes, size: int) -> bytes | str:
    try:
        return make_thumbnail(data, size)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"image cannot be decoded: {exc}"


def write_thumbnails(located: Located, folder: Path, *, size: int = THUMB_SIZE, workers: int = 2,
                     progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """Write a thumbnail of every found key into ``folder`` (``report_folder.thumb_name``), reading the
    shards in file order; return key -> reason for those that failed (undecodable images)."""
    index = located.index
    order = sorted(range(len(index)), key=lambda r: (index.shard_ids[r], index.offset[r]))
    keys = [index.keys[r].decode("utf-8") for r in order]
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(keys), BATCH):
            batch = keys[start:start + BATCH]
            data = [index.read_image(k) for k in batch]
            for key, out in zip(batch, pool.map(_thumb_or_reason, data, [size] * len(batch))):
                if isinstance(out, str):
                    failed[key] = out
                else:
                    with naming_write_errors(folder / thumb_name(key)):
                        (folder / thumb_name(key)).write_bytes(out)
            if progress is not None:
                progress(len(batch))
    index.close()
    return failed
