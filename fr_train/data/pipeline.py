"""``build_train_data``: selection + shard index + stream (+ composer, augmentation) behind one object."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DataLoader

from fr_data.loading.shard_index import ShardIndex
from fr_train.data.augment import Augmenter
from fr_train.data.batch import ImageBatch
from fr_train.data.composer import Composer, build_composer
from fr_train.data.config import DataConfig, validate_data_config
from fr_train.data.reader import ImageReader
from fr_train.data.selection import Selection, resolve_selection
from fr_train.data.stream import SelectedStream


class TrainData:
    """The training batches of one rank, epoch by epoch.

    Attributes:
        selection: the resolved :class:`~fr_train.data.selection.Selection` (keys, relabel map, report).
        stream: the underlying :class:`~fr_train.data.stream.SelectedStream`.
        num_classes: classes after relabelling (the head's size).
        batches_per_epoch: batches every rank yields per epoch (equal on all ranks).
    """

    def __init__(self, selection: Selection, stream: SelectedStream, *, num_workers: int = 0,
                 pin_memory: bool = False):
        self.selection = selection
        self.stream = stream
        self.num_workers = num_workers
        self.pin_memory = pin_memory

    @property
    def num_classes(self) -> int:
        """Classes after relabelling: the classification head's size."""
        return self.selection.num_classes

    @property
    def batches_per_epoch(self) -> int:
        """Batches every rank yields per epoch."""
        return self.stream.num_batches

    @property
    def composer(self) -> Composer | None:
        """The DDL/OT composer (its ``report`` says what the branches draw from), or None."""
        return self.stream.composer

    def __len__(self) -> int:
        """Batches left in the epoch: ``batches_per_epoch - start_step``."""
        return len(self.stream)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch (shard order, shuffle, augmentation and composer draws); call before iterating.

        ``start_step`` resumes an interrupted epoch: iteration then yields steps ``start_step`` ..
        ``batches_per_epoch - 1``, exactly the batches the uninterrupted epoch had there.
        """
        self.stream.set_epoch(epoch, start_step)

    def __iter__(self) -> Iterator[ImageBatch]:
        loader = DataLoader(self.stream, batch_size=None, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, persistent_workers=False)
        return iter(loader)


def build_train_data(cfg: DataConfig, *, rank: int, world_size: int) -> TrainData:
    """Resolve the selection once and build the rank's stream (with composer and augmentation).

    Every rank resolves the same selection deterministically (sorted keys, sorted labels), so no
    collective is needed. Save the selection beside the run with ``train_data.selection.save(folder)``.

    Raises:
        ConfigError: bad values, or a selection too small for one batch per rank.
        DataError: missing or inconsistent shard / manifest files.
    """
    validate_data_config(cfg)
    selection = resolve_selection(cfg.selection, cfg.shards, cfg.run)
    reader = ImageReader(selection, ShardIndex.open(cfg.shards), cfg.image_size)
    composer = (build_composer(cfg.composer, reader, cfg.run, cfg.shards, seed=cfg.seed)
                if cfg.composer.enabled else None)
    stream = SelectedStream(reader, cfg.batch_size, rank=rank, world_size=world_size,
                            epoch_samples=cfg.epoch_samples, seed=cfg.seed, shuffle=cfg.shuffle,
                            buffer=cfg.buffer, augment=Augmenter(cfg.augment), composer=composer)
    return TrainData(selection, stream, num_workers=cfg.num_workers, pin_memory=cfg.pin_memory)
