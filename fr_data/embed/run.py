"""Embedding a shard folder with a face backbone into an embeddings folder EMB.

The folder's files and schemas are described in :mod:`fr_data.folders.embeddings_folder`.

Memory is bounded: embeddings go straight into a ``.npy`` memmap at each sample's row (its position in
the sorted key list), so only the ``N`` keys and three float columns live in RAM. The whole run is
written into the staging folder ``.<EMB name>.partial`` beside EMB, which becomes EMB only when
everything (including run.json) is complete (:mod:`fr_data.io.publish`): an interrupted run leaves
nothing under the final name. Rank 0 holds the lock of EMB for the whole run (a second run to the same
``--out`` is refused); an ``out`` that is, contains or lies inside the shard folder is refused first.

Distributed (``torch.distributed`` initialised, e.g. under ``torchrun``): rank ``r`` embeds shards
``i`` with ``i % world == r`` into ``parts/rank-r.npy`` + ``parts/rank-r.parquet`` (each sorted by key);
after a barrier rank 0 merges the parts in key order (:func:`fr_data.embed.parts.merge_parts`) and
finalises the folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from fr_data import runtime
from fr_data.embed.forward import embed_batch, quality_batch
from fr_data.embed.images import Decoder, ImageBatch, ShardImages, collate, read_shard
from fr_data.embed.keys import KeyTable, ShardReader, read_manifest, scan_keys
from fr_data.embed.parts import merge_parts
from fr_data.embed.resolution import DEFAULT_MAX_FACTOR, DEFAULT_TOLERANCE, estimate_resolution
from fr_data.embed.rows import RowWriter
from fr_data.folders import embeddings_folder as ef
from fr_data.folders.shard_folder import fingerprint, list_shards, samples_path
from fr_data.io.atomic import atomic_path
from fr_data.io.errors import DataError
from fr_data.io.faults import kill_point
from fr_data.io.hashing import file_sha256
from fr_data.io.publish import check_apart, check_target, output_lock, prepare_staging, publish, staging_dir
from fr_data.loading.decode import decode_face

#: ``(B, 3, H, W)`` aligned crops -> ``(yaw, roll)`` arrays in degrees (e.g. :mod:`fr_data.embed.pose`).
PoseEstimator = Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]


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
    quality: nn.Module | None = None
    pose: PoseEstimator | None = None


def embed_shards(model: nn.Module, shards: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                 batch_size: int = 128, flip: bool = True, device: str | torch.device = "cpu",
                 workers: int = 0, manifest: str | os.PathLike | None = None,
                 spec: dict[str, Any] | None = None, amp: bool = False, overwrite: bool = False,
                 progress: bool = True, read: ShardReader = read_shard, decode: Decoder = decode_face,
                 resolution: Callable[[torch.Tensor], torch.Tensor] = estimate_resolution,
                 quality: nn.Module | None = None, quality_spec: dict[str, Any] | None = None,
                 pose: PoseEstimator | None = None, pose_spec: dict[str, Any] | None = None,
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
        quality: a face-quality model (images ``(B, 3, 112, 112)`` -> ``(B,)`` scores, higher = better,
            e.g. :func:`fr_train.objective.quality.load_quality_model`); its score of every unflipped image
            becomes the index's optional ``quality`` column. None: no such column.
        quality_spec: how the quality model was built, recorded in run.json under ``quality``.
        pose: a head-pose estimator (:func:`fr_data.embed.pose.load_landmark_pose`); its yaw and roll of
            every unflipped image become the index's optional ``yaw`` and ``roll`` columns. None: none.
        pose_spec: how the pose was estimated, recorded in run.json under ``pose``.

    Returns:
        The run.json content on rank 0; None on other ranks.

    Raises:
        DataError: ``out`` exists without ``overwrite``; a key in the shards but not the manifest or the
            reverse; a duplicate key; a label that differs from the manifest; an undecodable image
            (naming shard and key); a zero or non-finite feature.
    """
    out, shards = Path(out), [Path(s) for s in shards]
    settings = _Settings(batch_size, flip, torch.device(device), workers, amp, progress, read, decode,
                         resolution, quality, pose)
    rank, world = runtime.rank_world()
    check_apart(out, *shards, manifest)
    # rank 0 holds the lock for every rank (the others write only into its staging folder)
    with output_lock(out, "embeddings folder") if rank == 0 else contextlib.nullcontext():
        check_target(out, overwrite)
        staging = staging_dir(out)
        _prepare_staging(staging, rank, world)
        started = time.time()
        try:
            if world == 1:
                keys = _plan_keys(shards, manifest, None, read)
                index = _embed_part(model, shards, keys, staging / ef.EMBEDDINGS_FILE, settings, rank)
            else:
                index = _embed_rank_and_merge(model, shards, manifest, staging, settings, rank, world)
                if index is None:
                    return None
            info = _run_info(spec, settings, index, world, shards, manifest, time.time() - started)
            if quality is not None:
                info["quality"] = {"method": "quality model score of the unflipped image (higher = better)",
                                   **(quality_spec or {})}
            if pose is not None:
                info["pose"] = dict(pose_spec or {"method": "head-pose estimator of the unflipped image"})
            return _finalize(staging, out, index, info, overwrite)
        except Exception:
            if world == 1:  # a failed run leaves nothing behind (a killed one leaves the staging folder)
                shutil.rmtree(staging, ignore_errors=True)
            raise


def embed_folder(model: nn.Module, folder: str | os.PathLike, out: str | os.PathLike,
                 **kwargs: Any) -> dict[str, Any] | None:
    """:func:`embed_shards` over a shard folder: its shards (``list_shards``) and, when present, its
    ``samples.parquet`` manifest (which then fixes N and the key order up front)."""
    folder = Path(folder)
    check_apart(out, folder)
    manifest = samples_path(folder)
    kwargs.setdefault("manifest", manifest if manifest.exists() else None)
    return embed_shards(model, list_shards(folder), out, **kwargs)


def _embed_rank_and_merge(model: nn.Module, shards: list[Path], manifest: str | os.PathLike | None,
                          staging: Path, settings: _Settings, rank: int, world: int) -> pa.Table | None:
    """Embed this rank's shards into ``parts/rank-R.*``; after a barrier rank 0 merges all parts."""
    mine = shards[rank::world]
    keys = _plan_keys(mine, manifest, {s.name for s in mine}, settings.read)
    parts = staging / ef.PARTS_DIR
    table = _embed_part(model, mine, keys, ef.part_paths(parts, rank)[0], settings, rank, allow_empty=True)
    ef.write_part_index(parts, rank, table)
    dist.barrier()
    if rank != 0:
        return None
    expected = read_manifest(manifest) if manifest is not None else None
    index = merge_parts(parts, staging / ef.EMBEDDINGS_FILE, expected)
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
    scorer = settings.quality.to(settings.device).eval() if settings.quality is not None else None
    loader = DataLoader(ShardImages(shards, settings.read, settings.decode), batch_size=settings.batch_size,
                        num_workers=settings.workers, collate_fn=collate,
                        pin_memory=settings.device.type == "cuda")
    bar = tqdm(total=len(keys), unit="img", desc=f"embed rank {rank}", dynamic_ncols=True,
               disable=not settings.progress or rank != 0)
    with atomic_path(target) as tmp, bar:
        writer = RowWriter(tmp, keys, settings.flip, quality=scorer is not None,
                           pose=settings.pose is not None)
        for batch in loader:
            _raise_batch_errors(batch)
            images = batch.images.to(settings.device, non_blocking=True)
            out = embed_batch(model, images, flip=settings.flip, amp=settings.amp)
            scores = quality_batch(scorer, images, amp=settings.amp) if scorer is not None else None
            angles = settings.pose(batch.images) if settings.pose is not None else None
            writer.write(batch, out, settings.resolution(images), scores, angles)
            kill_point("embed:batch")
            bar.update(len(batch.keys))
        return writer.finish(allow_empty)


def _raise_batch_errors(batch: ImageBatch) -> None:
    if batch.errors:
        raise DataError(*batch.errors[0])


def _prepare_staging(staging: Path, rank: int, world: int) -> None:
    """Rank 0 clears a stale staging folder (an interrupted run) and creates it; others wait."""
    if rank == 0:
        prepare_staging(staging)
        if world > 1:
            (staging / ef.PARTS_DIR).mkdir()
    if world > 1:
        dist.barrier()


def _shards_fingerprint(shards: list[Path], manifest: str | os.PathLike | None) -> str | None:
    """The fingerprint (``shard_folder.fingerprint``) of the one shard folder embedded, else None."""
    folders = {Path(manifest).parent} if manifest is not None else {s.parent for s in shards}
    return fingerprint(folders.pop()) if len(folders) == 1 else None


def _run_info(spec: dict[str, Any] | None, settings: _Settings, index: pa.Table, world: int, shards: list[Path],
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
        "shards": len(shards),
        "manifest": os.fspath(manifest) if manifest is not None else None,
        "shards_fingerprint": _shards_fingerprint(shards, manifest),
        "seconds": round(seconds, 3),
        "images_per_second": round(index.num_rows / seconds, 2) if seconds > 0 else None,
        "torch": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _finalize(staging: Path, out: Path, index: pa.Table, info: dict[str, Any],
              overwrite: bool) -> dict[str, Any]:
    """Hash the array, write index.parquet and run.json, then publish the staging folder as ``out``."""
    array = np.load(staging / ef.EMBEDDINGS_FILE, mmap_mode="r")
    info = {**info, "dims": int(array.shape[1]), "sha256": file_sha256(staging / ef.EMBEDDINGS_FILE)}
    del array
    ef.write_index(staging, index,
                   metadata={"spec": info["spec"], "embeddings_sha256": info["sha256"], "flip": info["flip"]})
    kill_point("embed:index")
    ef.write_run_info(staging, info)
    kill_point("embed:run_info")
    publish(staging, out, overwrite)
    return info
