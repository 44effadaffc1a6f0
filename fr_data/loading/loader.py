"""Reading WebDataset shards back: plain ordered iteration, face decoding, and a DDP-safe train loader.

The train loader streams samples with small generator stages (segments -> samples -> shuffle buffer
-> decode/flip -> batches) inside each DataLoader worker. Every rank yields the SAME number of batches
per epoch, so DDP collectives never wait on a rank that ran out of data (WebDataset issues #188/#225):

* the epoch's sample sequence is the shard list in a seeded per-epoch order (the same on all ranks),
  concatenated and, if the requested epoch is longer than the data, repeated;
* ``batches_per_rank = epoch_samples // (world_size * batch_size)`` (default epoch_samples = all
  samples); rank ``r`` takes the contiguous positions ``[r*Q, (r+1)*Q)`` with ``Q = batches_per_rank *
  batch_size``, and its DataLoader workers split those positions in whole batches;
* so within an epoch no sample is read twice (unless the epoch is set longer than the data) and at
  most ``world_size * batch_size - 1`` samples are left out. With equal shards whose count is a
  multiple of ``world_size * num_workers`` each worker reads whole, distinct shards.

Shard sample counts come from ``shards.json`` (see :mod:`fr_data.folders.shard_folder`) or are counted once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from fr_data.folders.shard_folder import list_shards, listed_counts
from fr_data.formats.images import MEMBER_EXTS
from fr_data.io.errors import ConfigError, DataError
from fr_data.loading.agreement import agreeing_samples
from fr_data.loading.decode import FACE_SIZE, decode_into


# --------------------------------------------------------------------------------------- plain reading
def _sample_dict(shard: Path, key: str, members: dict[str, bytes]) -> dict:
    image_ext = next((ext for ext in MEMBER_EXTS if ext in members), None)
    if image_ext is None or "cls" not in members:
        raise DataError(shard, f"key {key}", f"sample lacks an image or a .cls member (has {sorted(members)})")
    try:
        label = int(members["cls"])
    except ValueError:
        raise DataError(shard, f"key {key}", f"label {members['cls'][:20]!r} is not an integer") from None
    return {"key": key, "label": label, "jpg": members[image_ext], "shard": str(shard)}


def iter_samples(shards: Sequence[str | os.PathLike]) -> Iterator[dict]:
    """Yield every sample of ``shards`` in order as ``{"key", "label", "jpg", "shard"}``.

    ``jpg`` holds the stored image bytes (JPEG, or PNG for PNG sources). No shuffling, no splitting:
    meant for embedding a whole data set in a reproducible order.

    Raises:
        DataError: a malformed sample, or a shard that disagrees with its folder's ``samples.parquet``
            (:mod:`fr_data.loading.agreement`), naming the shard and the member.
    """
    for shard in shards:
        for key, members in agreeing_samples(shard):
            yield _sample_dict(Path(shard), key, members)


def shard_counts(shards: Sequence[str | os.PathLike]) -> list[int]:
    """Samples per shard, from each folder's shards.json when it lists the shard, else by counting."""
    listings: dict[Path, dict[str, int]] = {}
    counts = []
    for shard in map(Path, shards):
        if shard.parent not in listings:
            listings[shard.parent] = listed_counts(shard.parent)
        known = listings[shard.parent].get(shard.name)
        counts.append(known if known is not None else sum(1 for _ in agreeing_samples(shard)))
    return counts


# ------------------------------------------------------------------------------------ epoch partitioning
@dataclass(frozen=True)
class Segment:
    """Samples ``[start, stop)`` (positions inside the shard) of shard number ``shard``."""

    shard: int
    start: int
    stop: int


def batches_per_rank(total: int, world_size: int, batch_size: int, epoch_samples: int | None = None) -> int:
    """``floor(epoch_samples / (world_size * batch_size))``; epoch_samples defaults to ``total``."""
    wanted = total if epoch_samples is None else epoch_samples
    count = wanted // (world_size * batch_size)
    if count < 1:
        raise ConfigError(f"an epoch of {wanted} samples gives no full batch of {batch_size} on "
                          f"{world_size} rank(s)")
    return count


def worker_batches(num_batches: int, num_workers: int, worker: int) -> tuple[int, int]:
    """First batch and batch count of ``worker`` when ``num_batches`` are split as evenly as possible."""
    base, extra = divmod(num_batches, num_workers)
    return worker * base + min(worker, extra), base + (worker < extra)


def shard_order(num_shards: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The epoch's shard order, identical on every rank (seeded by ``seed`` and ``epoch``)."""
    if not shuffle:
        return np.arange(num_shards)
    return np.random.default_rng([seed, epoch]).permutation(num_shards)


def segments(counts: Sequence[int], order: Sequence[int], start: int, length: int) -> list[Segment]:
    """Cover positions ``[start, start+length)`` of the shards concatenated in ``order`` (cyclically)."""
    total = sum(counts[i] for i in order)
    if total == 0:
        raise ConfigError("the shards hold no samples")
    bounds = np.cumsum([0] + [counts[i] for i in order])
    out: list[Segment] = []
    pos, end = start, start + length
    while pos < end:
        offset = pos % total
        slot = int(np.searchsorted(bounds, offset, side="right")) - 1
        take = min(end - pos, int(bounds[slot + 1]) - offset)
        first = offset - int(bounds[slot])
        out.append(Segment(int(order[slot]), first, first + take))
        pos += take
    return out


# ----------------------------------------------------------------------------------------- the dataset
def _read_segments(shards: Sequence[Path], segs: Sequence[Segment]) -> Iterator[dict]:
    """Samples of each segment in turn; a shard shorter than its listed count is an error.

    A short shard would give this rank fewer batches than the others and hang DDP, so it must not
    pass silently; every sample read is checked against the folder's manifest (``agreeing_samples``).
    """
    for seg in segs:
        path, position = shards[seg.shard], 0
        samples = agreeing_samples(path)
        for position, (key, members) in enumerate(samples, start=1):
            if position > seg.start:
                yield _sample_dict(path, key, members)
            if position == seg.stop:
                break
        samples.close()  # closes the shard file now rather than at garbage collection
        if position < seg.stop:
            raise DataError(path, f"sample {position}", f"shard ends early: {seg.stop} samples were expected "
                            "(from shards.json or the counts given)")


def shuffle_buffer(samples: Iterator[dict], size: int, rng: np.random.Generator) -> Iterator[dict]:
    """Shuffle a stream with a buffer of ``size`` items (0 or 1: unchanged order)."""
    if size <= 1:
        yield from samples
        return
    buffer: list[dict] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        slot = int(rng.integers(size))
        buffer[slot], sample = sample, buffer[slot]
        yield sample
    rng.shuffle(buffer)
    yield from buffer


def _decode_sample(sample: dict, out: np.ndarray) -> None:
    try:
        decode_into(sample["jpg"], out)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(sample["shard"], f"key {sample['key']}", f"image does not decode: {exc}") from None


class ShardStream(IterableDataset):
    """Batches ``(images, labels)`` (or ``(images, labels, keys)``) of one rank, split across workers.

    Args:
        shards: shard paths, in a fixed order (the same on every rank).
        batch_size: samples per batch (every batch is full).
        counts: samples per shard; read from shards.json or counted when omitted.
        rank / world_size: this process's DDP position; from torch.distributed when None.
        epoch_samples: samples per epoch over all ranks (default: all samples); may exceed the data.
        seed: seeds the shard order, the shuffle buffer and the flips (with epoch, rank and worker).
        flip: mirror each image with probability 0.5.
        shuffle: shuffle the shard order per epoch and use a ``buffer``-sample shuffle buffer.
        return_keys: also yield the list of sample keys.
        size: output image side.
        normalize: yield float32 ``(x/255 - 0.5)/0.5`` images; False yields uint8 RGB (4x less memory
            to move between processes; apply :func:`normalize_faces` after moving them to the GPU).
    """

    def __init__(self, shards: Sequence[str | os.PathLike], batch_size: int, *,
                 counts: Sequence[int] | None = None, rank: int | None = None, world_size: int | None = None,
                 epoch_samples: int | None = None, seed: int = 0, flip: bool = False, shuffle: bool = True,
                 buffer: int = 1000, return_keys: bool = False, size: int = FACE_SIZE, normalize: bool = True):
        super().__init__()
        self.shards = [Path(s) for s in shards]
        self.counts = list(counts) if counts is not None else shard_counts(self.shards)
        self.rank, self.world_size = _resolve_rank(rank, world_size)
        self.batch_size, self.epoch_samples, self.seed = batch_size, epoch_samples, seed
        self.flip, self.shuffle, self.buffer = flip, shuffle, buffer
        self.return_keys, self.size, self.normalize, self.epoch = return_keys, size, normalize, 0
        self.num_batches = batches_per_rank(sum(self.counts), self.world_size, batch_size, epoch_samples)

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (changes shard order, shuffle and flips); call before iterating."""
        self.epoch = epoch

    def worker_segments(self, worker: int, num_workers: int) -> tuple[list[Segment], int]:
        """The shard segments and batch count of one DataLoader worker of this rank."""
        first, count = worker_batches(self.num_batches, num_workers, worker)
        start = (self.rank * self.num_batches + first) * self.batch_size
        order = shard_order(len(self.shards), self.seed, self.epoch, self.shuffle)
        return segments(self.counts, order, start, count * self.batch_size), count

    def __iter__(self) -> Iterator[tuple]:
        info = get_worker_info()
        return self.iter_worker(*((info.id, info.num_workers) if info else (0, 1)))

    def iter_worker(self, worker: int, num_workers: int) -> Iterator[tuple]:
        """The batches DataLoader worker ``worker`` of ``num_workers`` yields for this rank."""
        segs, _ = self.worker_segments(worker, num_workers)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        samples = shuffle_buffer(_read_segments(self.shards, segs), self.buffer if self.shuffle else 0, rng)
        batch: list[dict] = []
        for sample in samples:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self._collate(batch, rng)
                batch = []

    def _collate(self, batch: list[dict], rng: np.random.Generator) -> tuple:
        dtype = torch.float32 if self.normalize else torch.uint8
        images = torch.empty((len(batch), 3, self.size, self.size), dtype=dtype)
        if get_worker_info() is not None:
            images.share_memory_()  # decoded in place in shared memory: no copy when sent to the main process
        pixels = images.numpy()
        for slot, sample in enumerate(batch):
            _decode_sample(sample, pixels[slot])
            if self.flip and rng.random() < 0.5:
                pixels[slot] = pixels[slot, :, :, ::-1]
        labels = torch.tensor([s["label"] for s in batch], dtype=torch.int64)
        out = (images, labels)
        return (*out, [s["key"] for s in batch]) if self.return_keys else out


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    dist = torch.distributed
    running = dist.is_available() and dist.is_initialized()
    world = world_size if world_size is not None else (dist.get_world_size() if running else 1)
    this = rank if rank is not None else (dist.get_rank() if running else 0)
    if not 0 <= this < world:
        raise ConfigError(f"rank {this} is outside world size {world}")
    return this, world


def make_train_loader(shards: str | os.PathLike | Sequence[str | os.PathLike], batch_size: int, *,
                      num_workers: int = 0, pin_memory: bool = False, **stream_kw) -> DataLoader:
    """A DataLoader over ``shards`` (a shard folder or a list of shard paths) yielding whole batches.

    ``stream_kw`` go to :class:`ShardStream` (rank, world_size, epoch_samples, seed, flip, shuffle,
    buffer, return_keys, size, normalize). ``len(loader)`` is the same on every rank. Call
    ``loader.dataset.set_epoch(e)`` before each epoch (workers are recreated per epoch, so they see it).
    """
    if isinstance(shards, (str, os.PathLike)):
        shards = list_shards(shards)
    stream = ShardStream(shards, batch_size, **stream_kw)
    return DataLoader(stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
                      persistent_workers=False)
