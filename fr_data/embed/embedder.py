"""Embed every image of a shard folder with a face backbone into an embeddings folder EMB.

Output (the "Embeddings folder EMB" contract that mining reads):

* ``EMB/embeddings.npy``: ``N x D`` float16, L2-normalised rows, rows sorted by sample key. With
  ``flip=True`` (default) a row is the InsightFace flip-sum ``f(x) + f(flip(x))``, then normalised;
  with ``flip=False`` it is ``f(x)`` normalised.
* ``EMB/index.parquet`` (:data:`INDEX_SCHEMA`): row ``i`` describes ``embeddings[i]``: ``key``,
  ``label``, ``norm`` = ``||f(x)||``, the raw norm of the *unflipped* image's feature before any
  normalisation in both modes (so it means the same thing with and without flip, and is the MagFace /
  AdaFace feature magnitude), ``flip_cos`` = ``cos(f(x), f(flip(x)))`` (a pose proxy: frontal faces are
  near mirror-symmetric; null with ``flip=False``), ``resolution`` = :func:`fr_data.embed.resolution.
  estimate_resolution` of the decoded image.
* ``EMB/run.json``: model spec, dims, count, sha256 of embeddings.npy, timing, settings.

Memory is bounded: embeddings go straight into a ``.npy`` memmap at each sample's row (its position in
the sorted key list), so only the ``N`` keys and three float columns live in RAM. The whole run is
written into a staging folder ``.<EMB name>.partial`` beside EMB, which is renamed to EMB only when
everything (including run.json) is complete: an interrupted run leaves nothing under the final name.

Distributed (``torch.distributed`` initialised, e.g. under ``torchrun``): rank ``r`` embeds shards
``i`` with ``i % world == r`` into ``parts/rank-r.npy`` + ``parts/rank-r.parquet`` (each sorted by key);
after a barrier rank 0 merges the parts in key order (:func:`merge_parts`) and finalises the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from fr_data.io.atomic import atomic_path, atomic_write_text
from fr_data.io.errors import DataError
from fr_data.loading.loader import decode_face, iter_samples, list_shards
from fr_data.io.parquet import read_table, write_table
from fr_data.embed.resolution import DEFAULT_MAX_FACTOR, DEFAULT_TOLERANCE, estimate_resolution
from fr_data.io.hashing import file_sha256

__all__ = ["EMBEDDINGS_FILE", "INDEX_FILE", "INDEX_SCHEMA", "MANIFEST_FILE", "RUN_FILE", "BatchEmbedding",
           "KeyTable", "embed_batch", "embed_folder", "embed_shards", "list_shards", "merge_parts",
           "read_index", "read_manifest", "scan_keys", "staging_dir"]

EMBEDDINGS_FILE = "embeddings.npy"
INDEX_FILE = "index.parquet"
RUN_FILE = "run.json"
MANIFEST_FILE = "samples.parquet"
PARTS_DIR = "parts"

INDEX_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
    pa.field("norm", pa.float32(), nullable=False),  # ||f(x)|| of the unflipped image, before normalising
    pa.field("flip_cos", pa.float32(), nullable=True),  # cos(f(x), f(flip x)); null when flip is off
    pa.field("resolution", pa.float32(), nullable=True),  # fr_data.embed.resolution estimate in (0, 1]
])

_MANIFEST_COLUMNS = pa.schema([pa.field("key", pa.string(), nullable=False),
                               pa.field("label", pa.int64(), nullable=False)])
_MERGE_CHUNK_ROWS = 65_536


# ------------------------------------------------------------------------------------------ the keys
@dataclass(frozen=True)
class KeyTable:
    """The sorted keys (UTF-8 bytes, byte order = code-point order) and labels of an embedding run.

    Args:
        keys: ``np.bytes_`` array, strictly ascending.
        labels: int64 labels aligned with ``keys``.
        source: where the keys came from (a manifest or a shard folder), named in errors.
    """

    keys: np.ndarray
    labels: np.ndarray
    source: Path

    @classmethod
    def build(cls, keys: Sequence[str] | np.ndarray, labels: Sequence[int] | np.ndarray,
              source: str | os.PathLike) -> KeyTable:
        """Sort ``keys``/``labels`` by key; a duplicate key raises DataError naming ``source``."""
        raw = _encode(keys)
        order = np.argsort(raw, kind="stable")
        raw, lab = raw[order], np.asarray(labels, dtype=np.int64)[order]
        dup = np.flatnonzero(raw[1:] == raw[:-1])
        if dup.size:
            raise DataError(source, f"key {raw[dup[0]].decode()}", "duplicate key")
        return cls(raw, lab, Path(source))

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Row of each key (binary search) and whether the key is in the table at all."""
        query = _encode(keys)
        pos = np.searchsorted(self.keys, query)
        found = (pos < len(self.keys)) & (self.keys[np.minimum(pos, len(self.keys) - 1)] == query)
        return pos, found

    def strings(self) -> pa.Array:
        return pa.array(np.char.decode(self.keys, "utf-8") if len(self.keys) else [], pa.string())


def read_manifest(path: str | os.PathLike, shard_names: set[str] | None = None) -> KeyTable:
    """Keys and labels of a shard manifest (``samples.parquet``), optionally only of some shards.

    ``shard_names`` filters on the manifest's ``shard`` column (shard file names).
    """
    has_shard = "shard" in pq.read_schema(path).names
    if shard_names is not None and not has_shard:
        raise DataError(path, "", "manifest has no 'shard' column to split samples by shard")
    table = read_table(path, _MANIFEST_COLUMNS, columns=["key", "label"])
    if shard_names is not None:
        shard_col = pq.read_table(path, columns=["shard"]).column("shard")
        basenames = pc.replace_substring_regex(shard_col, pattern=".*/", replacement="")
        table = table.filter(pc.is_in(basenames, value_set=pa.array(sorted(shard_names), pa.string())))
    return KeyTable.build(table.column("key").to_pylist(), table.column("label").to_numpy(), path)


def scan_keys(shards: Sequence[Path], read: ShardReader) -> KeyTable:
    """Keys and labels found by reading ``shards`` (used when there is no manifest)."""
    keys: list[str] = []
    labels: list[int] = []
    for shard in shards:
        for key, label, _ in read(shard):
            keys.append(key)
            labels.append(label)
    source = shards[0].parent if shards else Path(".")
    return KeyTable.build(keys, labels, source)


# ------------------------------------------------------------------------------------- reading shards
ShardReader = Callable[[Path], Iterator[tuple[str, int, bytes]]]
Decoder = Callable[[bytes], torch.Tensor]


def read_shard(shard: Path) -> Iterator[tuple[str, int, bytes]]:
    """Yield ``(key, label, image bytes)`` of one shard in file order (``fr_data.loading.loader.iter_samples``)."""
    for sample in iter_samples([shard]):
        yield sample["key"], sample["label"], sample["jpg"]


_Item = tuple[str, int, str, torch.Tensor | None, tuple[str, str] | None]  # key, label, shard, image, error


@dataclass
class _Batch:
    keys: list[str]
    labels: torch.Tensor
    shards: list[str]
    images: torch.Tensor
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (path, where, reason)

    def pin_memory(self) -> _Batch:
        self.images = self.images.pin_memory()
        return self


class _ShardImages(IterableDataset):
    """Decoded samples of some shards; DataLoader workers split the shards (shard i -> worker i % W).

    Decoding failures are passed on as error records (not raised) so that the main process can raise a
    DataError that names the shard and key (a DataLoader re-raises worker errors as plain RuntimeError).
    """

    def __init__(self, shards: Sequence[Path], read: ShardReader, decode: Decoder):
        self.shards, self.read, self.decode = list(shards), read, decode

    def __iter__(self) -> Iterator[_Item]:
        info = get_worker_info()
        mine = self.shards if info is None else self.shards[info.id::info.num_workers]
        for shard in mine:
            try:
                for key, label, data in self.read(shard):
                    yield self._decode_one(shard, key, label, data)
            except DataError as exc:  # a malformed shard or sample: pass on its own locator
                yield "", -1, os.fspath(exc.path), None, (exc.where, exc.reason)

    def _decode_one(self, shard: Path, key: str, label: int, data: bytes) -> _Item:
        try:
            return key, label, str(shard), self.decode(data), None
        except Exception as exc:  # PIL raises many types for corrupt images
            reason = f"cannot decode image: {type(exc).__name__}: {exc}"
            return key, label, str(shard), None, (f"key {key}", reason)


def _collate(items: list[_Item]) -> _Batch:
    ok = [it[3] for it in items if it[3] is not None]
    shape = ok[0].shape if ok else (3, 112, 112)
    images = torch.stack([it[3] if it[3] is not None else torch.zeros(shape) for it in items])
    errors = [(it[2], *it[4]) for it in items if it[4] is not None]
    return _Batch([it[0] for it in items], torch.tensor([it[1] for it in items], dtype=torch.int64),
                  [it[2] for it in items], images, errors)


# ----------------------------------------------------------------------------------------- embedding
@dataclass
class BatchEmbedding:
    """Per-batch model output: normalised rows, raw norms, flip cosines (None without flip)."""

    features: torch.Tensor
    norm: torch.Tensor
    flip_cos: torch.Tensor | None


@torch.inference_mode()
def embed_batch(model: nn.Module, images: torch.Tensor, *, flip: bool = True,
                amp: bool = False) -> BatchEmbedding:
    """Embed a batch ``(B, 3, H, W)`` (already on the model's device).

    With ``flip`` the image and its horizontal mirror go through the model in one ``2B`` forward; the
    row is ``normalise(f(x) + f(flip x))``. ``norm`` is always ``||f(x)||``. A model returning a tuple
    (e.g. ``(features, norms)``) contributes its first element.
    """
    inputs = torch.cat([images, images.flip(-1)]) if flip else images
    with torch.autocast(images.device.type, enabled=amp):
        out = model(inputs)
    out = (out[0] if isinstance(out, (tuple, list)) else out).float()
    plain, mirrored = out.chunk(2) if flip else (out, None)
    combined = plain + mirrored if flip else plain
    features = combined / combined.norm(dim=1, keepdim=True)
    flip_cos = torch.nn.functional.cosine_similarity(plain, mirrored, dim=1) if flip else None
    return BatchEmbedding(features, plain.norm(dim=1), flip_cos)


class _RowWriter:
    """Write embedded batches into their key rows of a ``.npy`` memmap (opened once D is known)."""

    def __init__(self, path: Path, keys: KeyTable, flip: bool):
        self.path, self.keys, self.flip = path, keys, flip
        n = len(keys)
        self.array: np.memmap | None = None
        self.filled = np.zeros(n, dtype=bool)
        self.norm = np.zeros(n, dtype=np.float32)
        self.flip_cos = np.full(n, np.nan, dtype=np.float32)
        self.resolution = np.zeros(n, dtype=np.float32)

    def write(self, batch: _Batch, out: BatchEmbedding, resolution: torch.Tensor) -> None:
        pos = self._checked_positions(batch)
        self._check_features(batch, out)
        features = out.features.cpu().numpy().astype(np.float16)
        if self.array is None:
            self.array = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float16,
                                                   shape=(len(self.keys), features.shape[1]))
        self.array[pos] = features
        self.filled[pos] = True
        self.norm[pos] = out.norm.cpu().numpy()
        if out.flip_cos is not None:
            self.flip_cos[pos] = out.flip_cos.cpu().numpy()
        self.resolution[pos] = resolution.cpu().numpy()

    def _checked_positions(self, batch: _Batch) -> np.ndarray:
        """Rows of the batch's keys; unknown, duplicate or relabelled keys raise DataError."""
        pos, found = self.keys.lookup(batch.keys)
        problems = (
            (~found, f"sample is not listed in {self.keys.source}"),
            (self.filled[pos] | _repeated(pos),
             "duplicate sample key (seen earlier in this or another shard)"),
            (found & (self.keys.labels[np.minimum(pos, len(self.keys) - 1)] != batch.labels.numpy()),
             f"label differs from the one in {self.keys.source}"),
        )
        for mask, reason in problems:
            bad = _first(mask)
            if bad is not None:
                raise DataError(batch.shards[bad], f"key {batch.keys[bad]}", reason)
        return pos

    @staticmethod
    def _check_features(batch: _Batch, out: BatchEmbedding) -> None:
        bad = ~torch.isfinite(out.features).all(dim=1) | (out.norm <= 0) | ~torch.isfinite(out.norm)
        first_bad = _first(bad.cpu().numpy())
        if first_bad is not None:
            raise DataError(batch.shards[first_bad], f"key {batch.keys[first_bad]}",
                            "the model produced a zero or non-finite feature")

    def finish(self, allow_empty: bool = False) -> pa.Table:
        """Flush the array and return the index table; keys never written raise DataError.

        With ``allow_empty`` (a rank without samples) an empty table is returned and no array written.
        """
        missing = np.flatnonzero(~self.filled)
        if missing.size:
            some = [k.decode() for k in self.keys.keys[missing[:5]]]
            raise DataError(self.keys.source, f"key {some[0]}",
                            f"{missing.size} sample(s) listed here are missing from the shards, e.g. {some}")
        if self.array is None:
            if allow_empty:
                return INDEX_SCHEMA.empty_table()
            raise DataError(self.keys.source, "", "no samples to embed")
        self.array.flush()
        del self.array
        self.array = None
        n = len(self.keys)
        flip_cos = pa.array(self.flip_cos, pa.float32()) if self.flip else pa.nulls(n, pa.float32())
        return pa.table({"key": self.keys.strings(), "label": pa.array(self.keys.labels),
                         "norm": pa.array(self.norm), "flip_cos": flip_cos,
                         "resolution": pa.array(self.resolution)}, schema=INDEX_SCHEMA)


def _repeated(pos: np.ndarray) -> np.ndarray:
    """True for every occurrence after the first of a value in ``pos``."""
    _, first = np.unique(pos, return_index=True)
    repeated = np.ones(len(pos), dtype=bool)
    repeated[first] = False
    return repeated


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


# ----------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class _Settings:
    batch_size: int
    flip: bool
    device: torch.device
    workers: int
    amp: bool
    progress: bool
    read: ShardReader
    decode: Decoder
    resolution: Callable[[torch.Tensor], torch.Tensor]


def embed_shards(model: nn.Module, shards: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                 batch_size: int = 128, flip: bool = True, device: str | torch.device = "cpu",
                 workers: int = 0, manifest: str | os.PathLike | None = None,
                 spec: dict[str, Any] | None = None, amp: bool = False, overwrite: bool = False,
                 progress: bool = True, read: ShardReader = read_shard, decode: Decoder = decode_face,
                 resolution: Callable[[torch.Tensor], torch.Tensor] = estimate_resolution,
                 ) -> dict[str, Any] | None:
    """Embed every sample of ``shards`` with ``model`` into the folder ``out`` (module docstring).

    Args:
        model: the backbone (any module mapping ``(B, 3, 112, 112)`` to ``(B, D)``).
        shards: shard tar paths; under torch.distributed rank ``r`` takes shards ``i % world == r``.
        out: the EMB folder to create.
        batch_size: images per forward (the flip doubles it).
        flip: store the flip-sum and compute ``flip_cos``.
        device: where the model runs.
        workers: DataLoader processes reading and decoding shards (0 = in the main process).
        manifest: ``samples.parquet`` giving the keys and labels up front (checked both ways against
            the shards); None = scan the shards for their keys first.
        spec: how the model was built, recorded in run.json and the index metadata.
        amp: autocast the forward (float16 on CUDA, bfloat16 on CPU).
        overwrite: replace an existing ``out`` (only once the new folder is complete).
        progress: show a tqdm bar (rank 0).
        read, decode, resolution: injected shard reader, image decoder and resolution estimator.

    Returns:
        The run.json content on rank 0; None on other ranks.

    Raises:
        DataError: ``out`` exists without ``overwrite``; a key in the shards but not the manifest or the
            reverse; a duplicate key; a label that differs from the manifest; an undecodable image
            (naming shard and key); a zero or non-finite feature.
    """
    out, shards = Path(out), [Path(s) for s in shards]
    settings = _Settings(batch_size, flip, torch.device(device), workers, amp, progress, read, decode,
                         resolution)
    rank, world = _rank_world()
    _check_target(out, overwrite)
    staging = staging_dir(out)
    _prepare_staging(staging, rank, world)
    started = time.time()
    if world == 1:
        keys = _plan_keys(shards, manifest, None, read)
        index = _embed_part(model, shards, keys, staging / EMBEDDINGS_FILE, settings, rank)
    else:
        index = _embed_rank_and_merge(model, shards, manifest, staging, settings, rank, world)
        if index is None:
            return None
    info = _run_info(spec, settings, index, world, len(shards), manifest, time.time() - started)
    return _finalize(staging, out, index, info, overwrite)


def embed_folder(model: nn.Module, folder: str | os.PathLike, out: str | os.PathLike,
                 **kwargs: Any) -> dict[str, Any] | None:
    """:func:`embed_shards` over a shard folder: its shards (``list_shards``) and, when present, its
    ``samples.parquet`` manifest (which then fixes N and the key order up front)."""
    folder = Path(folder)
    manifest = folder / MANIFEST_FILE
    kwargs.setdefault("manifest", manifest if manifest.exists() else None)
    return embed_shards(model, list_shards(folder), out, **kwargs)


def _embed_rank_and_merge(model: nn.Module, shards: list[Path], manifest: str | os.PathLike | None,
                          staging: Path, settings: _Settings, rank: int, world: int) -> pa.Table | None:
    """Embed this rank's shards into ``parts/rank-R.*``; after a barrier rank 0 merges all parts."""
    mine = shards[rank::world]
    keys = _plan_keys(mine, manifest, {s.name for s in mine}, settings.read)
    parts = staging / PARTS_DIR
    table = _embed_part(model, mine, keys, parts / f"rank-{rank}.npy", settings, rank, allow_empty=True)
    write_table(table, parts / f"rank-{rank}.parquet", INDEX_SCHEMA)
    dist.barrier()
    if rank != 0:
        return None
    expected = read_manifest(manifest) if manifest is not None else None
    index = merge_parts(parts, staging / EMBEDDINGS_FILE, expected)
    shutil.rmtree(parts)
    return index


def _plan_keys(shards: list[Path], manifest: str | os.PathLike | None, shard_names: set[str] | None,
               read: ShardReader) -> KeyTable:
    if manifest is None:
        return scan_keys(shards, read)
    return read_manifest(manifest, shard_names)


def _embed_part(model: nn.Module, shards: list[Path], keys: KeyTable, target: Path, settings: _Settings,
                rank: int, allow_empty: bool = False) -> pa.Table:
    """Embed ``shards`` into ``target`` (rows = ``keys`` order, temp name until complete)."""
    model = model.to(settings.device).eval()
    loader = DataLoader(_ShardImages(shards, settings.read, settings.decode), batch_size=settings.batch_size,
                        num_workers=settings.workers, collate_fn=_collate,
                        pin_memory=settings.device.type == "cuda")
    bar = tqdm(total=len(keys), unit="img", desc=f"embed rank {rank}", dynamic_ncols=True,
               disable=not settings.progress or rank != 0)
    with atomic_path(target) as tmp, bar:
        writer = _RowWriter(tmp, keys, settings.flip)
        for batch in loader:
            _raise_batch_errors(batch)
            images = batch.images.to(settings.device, non_blocking=True)
            out = embed_batch(model, images, flip=settings.flip, amp=settings.amp)
            writer.write(batch, out, settings.resolution(images))
            bar.update(len(batch.keys))
        return writer.finish(allow_empty)


def _raise_batch_errors(batch: _Batch) -> None:
    if batch.errors:
        raise DataError(*batch.errors[0])


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def staging_dir(out: str | os.PathLike) -> Path:
    """The folder a run writes into before it is renamed to ``out``: ``.<name>.partial`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise DataError(out, "", "output folder already exists; pass --overwrite to replace it")


def _prepare_staging(staging: Path, rank: int, world: int) -> None:
    """Rank 0 clears a stale staging folder (an interrupted run) and creates it; others wait."""
    if rank == 0:
        if staging.exists():
            shutil.rmtree(staging)
        (staging / PARTS_DIR if world > 1 else staging).mkdir(parents=True)
    if world > 1:
        dist.barrier()


# ------------------------------------------------------------------------------------------- merging
def merge_parts(parts_dir: str | os.PathLike, target: str | os.PathLike, expected: KeyTable | None = None,
                *, chunk_rows: int = _MERGE_CHUNK_ROWS) -> pa.Table:
    """Merge ``rank-R.npy`` / ``rank-R.parquet`` parts (each sorted by key) into one key-sorted array.

    Writes ``target`` (a ``.npy``, temp name until complete) chunk by chunk: memory holds the keys and
    index columns plus ``chunk_rows`` embedding rows, never the whole array.

    Args:
        parts_dir: the folder holding the parts.
        target: the merged ``.npy`` file.
        expected: the full key table (from the manifest); the merged keys must equal it.
        chunk_rows: rows copied per step.

    Returns:
        The merged index table (INDEX_SCHEMA), row ``i`` describing ``target[i]``.

    Raises:
        DataError: no parts, a part whose array and index disagree, parts of different widths, a key in
            two parts, or merged keys that differ from ``expected``.
    """
    tables, arrays, paths = _read_parts(Path(parts_dir))
    keys = _encode(pa.concat_arrays([t.column("key").combine_chunks() for t in tables]).to_pylist())
    order = np.argsort(keys, kind="stable")
    part_of = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])[order]
    row_of = np.concatenate([np.arange(t.num_rows) for t in tables])[order]
    sorted_keys = keys[order]
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if dup.size:
        raise DataError(paths[part_of[dup[0] + 1]], f"key {sorted_keys[dup[0]].decode()}",
                        "key embedded by two ranks (it is in two shards)")
    if expected is not None:
        _compare_keys(sorted_keys, expected, Path(parts_dir))
    dims = {a.shape[1] for a in arrays if a is not None}
    if len(dims) != 1:
        raise DataError(parts_dir, "", f"parts disagree on the embedding width or are all empty: {dims}")
    with atomic_path(target) as tmp:
        merged = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(keys), dims.pop()))
        for start in range(0, len(keys), chunk_rows):
            stop = min(start + chunk_rows, len(keys))
            part, rows = part_of[start:stop], row_of[start:stop]
            for p in np.unique(part):
                merged[start:stop][part == p] = arrays[p][rows[part == p]]
        merged.flush()
        del merged
    return pa.concat_tables(tables).take(pa.array(order))


def _read_parts(parts_dir: Path) -> tuple[list[pa.Table], list[np.ndarray | None], list[Path]]:
    """Index tables, memmapped arrays (None for empty parts) and paths of ``rank-*`` parts, by rank."""
    paths = sorted(parts_dir.glob("rank-*.parquet"), key=lambda p: int(p.stem.split("-")[1]))
    if not paths:
        raise DataError(parts_dir, "", "no rank-*.parquet parts to merge")
    tables, arrays = [], []
    for path in paths:
        table = read_table(path, INDEX_SCHEMA)
        array = np.load(path.with_suffix(".npy"), mmap_mode="r") if table.num_rows else None
        if array is not None and (array.ndim != 2 or array.shape[0] != table.num_rows):
            raise DataError(path.with_suffix(".npy"), "",
                            f"array shape {array.shape} does not match {table.num_rows} index rows")
        tables.append(table)
        arrays.append(array)
    return tables, arrays, paths


def _compare_keys(merged: np.ndarray, expected: KeyTable, where: Path) -> None:
    if len(merged) == len(expected) and bool(np.all(merged == expected.keys)):
        return
    missing = np.setdiff1d(expected.keys, merged)[:5]
    extra = np.setdiff1d(merged, expected.keys)[:5]
    raise DataError(expected.source, "", f"embedded keys ({len(merged)}, merged from {where}) differ from "
                    f"the {len(expected)} listed: missing e.g. {[k.decode() for k in missing]}, "
                    f"not listed e.g. {[k.decode() for k in extra]}")


def _encode(keys: Sequence[str]) -> np.ndarray:
    return np.asarray([k.encode("utf-8") for k in keys], dtype=np.bytes_) if len(keys) else np.zeros(0, "S1")


# ------------------------------------------------------------------------------------------ finishing
def _run_info(spec: dict[str, Any] | None, settings: _Settings, index: pa.Table, world: int, n_shards: int,
              manifest: str | os.PathLike | None, seconds: float) -> dict[str, Any]:
    return {
        "spec": spec or {},
        "count": index.num_rows,
        "flip": settings.flip,
        "norm": "L2 norm of f(x) for the unflipped image, before normalisation",
        "resolution": {"method": "spectral cut-off (fr_data.embed.resolution)", "max_factor": DEFAULT_MAX_FACTOR,
                       "tolerance": DEFAULT_TOLERANCE},
        "device": str(settings.device),
        "amp": settings.amp,
        "batch_size": settings.batch_size,
        "world_size": world,
        "shards": n_shards,
        "manifest": os.fspath(manifest) if manifest is not None else None,
        "seconds": round(seconds, 3),
        "images_per_second": round(index.num_rows / seconds, 2) if seconds > 0 else None,
        "torch": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _finalize(staging: Path, out: Path, index: pa.Table, info: dict[str, Any],
              overwrite: bool) -> dict[str, Any]:
    """Hash the array, write index.parquet and run.json, then move the staging folder to ``out``."""
    array = np.load(staging / EMBEDDINGS_FILE, mmap_mode="r")
    info = {**info, "dims": int(array.shape[1]), "sha256": file_sha256(staging / EMBEDDINGS_FILE)}
    del array
    write_table(index, staging / INDEX_FILE, INDEX_SCHEMA,
                metadata={"spec": info["spec"], "embeddings_sha256": info["sha256"], "flip": info["flip"]})
    atomic_write_text(staging / RUN_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")
    _replace_dir(staging, out, overwrite)
    return info


def _replace_dir(staging: Path, out: Path, overwrite: bool) -> None:
    """Rename ``staging`` to ``out``; an existing ``out`` (with ``overwrite``) is removed afterwards."""
    if not out.exists():
        os.replace(staging, out)
        return
    _check_target(out, overwrite)
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old)




def read_index(emb: str | os.PathLike) -> pa.Table:
    """Read and validate ``EMB/index.parquet`` (checks its row count against embeddings.npy)."""
    emb = Path(emb)
    table = read_table(emb / INDEX_FILE, INDEX_SCHEMA)
    rows = np.load(emb / EMBEDDINGS_FILE, mmap_mode="r").shape[0]
    if rows != table.num_rows:
        raise DataError(emb / INDEX_FILE, "", f"{table.num_rows} rows but embeddings.npy has {rows}")
    return table
