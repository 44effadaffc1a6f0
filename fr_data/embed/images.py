"""Decoded images of some shards for embedding, split across DataLoader workers, errors passed on."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import IterableDataset, get_worker_info

from fr_data.embed.keys import ShardReader
from fr_data.io.errors import DataError
from fr_data.loading.loader import iter_samples

Decoder = Callable[[bytes], torch.Tensor]


def read_shard(shard: Path) -> Iterator[tuple[str, int, bytes]]:
    """Yield ``(key, label, image bytes)`` of one shard in file order (``fr_data.loading.loader.iter_samples``)."""
    for sample in iter_samples([shard]):
        yield sample["key"], sample["label"], sample["jpg"]


Item = tuple[str, int, str, torch.Tensor | None, tuple[str, str] | None]  # key, label, shard, image, error


@dataclass
class ImageBatch:
    keys: list[str]
    labels: torch.Tensor
    shards: list[str]
    images: torch.Tensor
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (path, where, reason)

    def pin_memory(self) -> ImageBatch:
        self.images = self.images.pin_memory()
        return self


class ShardImages(IterableDataset):
    """Decoded samples of some shards; DataLoader workers split the shards (shard i -> worker i % W).

    Decoding failures are passed on as error records (not raised) so that the main process can raise a
    DataError that names the shard and key (a DataLoader re-raises worker errors as plain RuntimeError).
    """

    def __init__(self, shards: Sequence[Path], read: ShardReader, decode: Decoder):
        self.shards, self.read, self.decode = list(shards), read, decode

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        mine = self.shards if info is None else self.shards[info.id::info.num_workers]
        for shard in mine:
            try:
                for key, label, data in self.read(shard):
                    yield self._decode_one(shard, key, label, data)
            except DataError as exc:  # a malformed shard or sample: pass on its own locator
                yield "", -1, os.fspath(exc.path), None, (exc.where, exc.reason)

    def _decode_one(self, shard: Path, key: str, label: int, data: bytes) -> Item:
        try:
            return key, label, str(shard), self.decode(data), None
        except Exception as exc:  # PIL raises many types for corrupt images
            reason = f"cannot decode image: {type(exc).__name__}: {exc}"
            return key, label, str(shard), None, (f"key {key}", reason)


def collate(items: list[Item]) -> ImageBatch:
    ok = [it[3] for it in items if it[3] is not None]
    shape = ok[0].shape if ok else (3, 112, 112)
    images = torch.stack([it[3] if it[3] is not None else torch.zeros(shape) for it in items])
    errors = [(it[2], *it[4]) for it in items if it[4] is not None]
    return ImageBatch([it[0] for it in items], torch.tensor([it[1] for it in items], dtype=torch.int64),
                  [it[2] for it in items], images, errors)
