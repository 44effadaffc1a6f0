"""The selected, relabelled samples as a DDP-safe stream of :class:`ImageBatch` es.

Epoch partitioning follows :mod:`fr_data.loading.loader`, in the space of *selected* samples: the shards, each
holding its selected samples in file order, are concatenated in a seeded per-epoch shard order (the
same on every rank) and, when ``epoch_samples`` exceeds the selection, repeated. Every rank yields
``batches_per_rank(selected or epoch_samples, world_size, batch_size)`` batches, rank ``r`` taking
batches ``[r*Q, (r+1)*Q)`` of that sequence, so no rank waits at epoch end and (for an epoch no longer
than the selection) no sample is read twice in an epoch.

Shuffling is by windows instead of a streaming buffer: the rank's batches are cut into windows of
``buffer // batch_size`` batches, and the positions of each window are permuted with an RNG seeded by
``(seed, epoch, rank, window)``. Every batch is therefore a pure function of ``(seed, epoch, rank,
step)``: it does not depend on the DataLoader worker count, and an interrupted epoch resumes at any
step exactly (``set_epoch(e, start_step=k)``); a window still spans ``buffer`` neighbouring samples, so
reads stay local. Step ``s`` goes to worker ``(s - start_step) mod num_workers``, which is the order
DataLoader interleaves its workers in. Images are read by position through the shard index
(``os.pread``): a worker reads only the selected samples of the steps it owns.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from fr_data.io.errors import ConfigError
from fr_data.loading.loader import batches_per_rank, segments, shard_order
from fr_train.data.augment import Augmenter
from fr_train.data.batch import ImageBatch
from fr_train.data.composer import Composer
from fr_train.data.reader import ImageReader

AUGMENT_STREAM = 1  # RNG stream tags: distinct draws for augmentation, composer (2) and shuffling
SHUFFLE_STREAM = 3


class SelectedStream(IterableDataset):
    """Batches of one rank over a :class:`~fr_train.data.selection.Selection`, split across workers.

    Args:
        reader: the selected samples (``reader.selection``) and random access to their images.
        batch_size: samples per batch (every batch is full).
        rank / world_size: this process's DDP position.
        epoch_samples: samples per epoch over all ranks (default: the selected count).
        seed: seeds shard order, shuffle, augmentation and composer (with epoch, rank, step).
        shuffle: shuffle the shard order per epoch and the samples within windows of ``buffer``.
        buffer: shuffle-window size in samples (rounded down to whole batches, at least one).
        augment: per-sample augmentation (None: none).
        composer: attaches DDL/OT branches to every batch (None: no branches).
    """

    def __init__(self, reader: ImageReader, batch_size: int, *, rank: int = 0, world_size: int = 1,
                 epoch_samples: int | None = None, seed: int = 0, shuffle: bool = True, buffer: int = 1000,
                 augment: Augmenter | None = None, composer: Composer | None = None):
        super().__init__()
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        self.selection, self.reader = reader.selection, reader
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.window = max(1, buffer // batch_size) if shuffle else 1
        self.augment, self.composer = augment, composer
        self.epoch, self.start_step = 0, 0
        # selected positions in (shard, offset) order, and where each shard's run starts
        self.order = np.lexsort((self.reader.offsets, self.reader.shard_ids))
        self.counts = np.bincount(self.reader.shard_ids, minlength=len(reader.index.shards)).tolist()
        self.shard_start = np.concatenate([[0], np.cumsum(self.counts)])
        self.num_batches = batches_per_rank(len(self.selection), world_size, batch_size, epoch_samples)

    def __len__(self) -> int:
        return self.num_batches - self.start_step

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch and the first step to yield (resuming mid-epoch); call before iterating."""
        if not 0 <= start_step <= self.num_batches:
            raise ConfigError(f"start_step {start_step} is outside the epoch's {self.num_batches} batches")
        self.epoch, self.start_step = epoch, start_step

    def worker_steps(self, worker: int, num_workers: int) -> range:
        """The steps (batch numbers within this rank's epoch) that ``worker`` yields, in order."""
        return range(self.start_step + worker, self.num_batches, num_workers)

    def window_positions(self, window: int) -> np.ndarray:
        """Selected positions of this rank's shuffle window ``window`` (its batches, permuted)."""
        first = window * self.window
        count = min(self.window, self.num_batches - first) * self.batch_size
        start = (self.rank * self.num_batches + first) * self.batch_size
        shards = shard_order(len(self.counts), self.seed, self.epoch, self.shuffle)
        positions = np.concatenate([self.order[self.shard_start[s.shard] + s.start:
                                               self.shard_start[s.shard] + s.stop]
                                    for s in segments(self.counts, shards, start, count)])
        if self.shuffle:
            rng = np.random.default_rng([self.seed, SHUFFLE_STREAM, self.epoch, self.rank, window])
            positions = positions[rng.permutation(len(positions))]
        return positions

    def step_positions(self, step: int) -> np.ndarray:
        """Selected positions of batch ``step`` of this rank in the current epoch."""
        window, slot = divmod(step, self.window)
        return self.window_positions(window)[slot * self.batch_size:(slot + 1) * self.batch_size]

    def __iter__(self) -> Iterator[ImageBatch]:
        info = get_worker_info()
        return self.iter_worker(*((info.id, info.num_workers) if info else (0, 1)))

    def iter_worker(self, worker: int, num_workers: int) -> Iterator[ImageBatch]:
        """The batches DataLoader worker ``worker`` of ``num_workers`` yields for this rank, in step order."""
        for step in self.worker_steps(worker, num_workers):
            yield self.collate(self.step_positions(step), step)

    def collate(self, positions: np.ndarray, step: int) -> ImageBatch:
        """Decode and augment the samples at ``positions`` into batch ``step`` (with composer branches)."""
        rng = np.random.default_rng([self.seed, AUGMENT_STREAM, self.epoch, self.rank, step])
        prepare = (lambda image, slot: self.augment(image, rng)) if self.augment is not None else None
        images = self.reader.images(positions, prepare)
        labels = torch.from_numpy(self.selection.labels[positions].astype(np.int64))
        branches = self.composer.compose(self.epoch, step, self.rank) if self.composer is not None else None
        return ImageBatch(images, labels, self.selection.keys[positions].tolist(), branches)
