"""Decode selected samples by position, through the shard index (random access, fork-safe)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

from fr_data.io.errors import DataError
from fr_data.loading.decode import decode_into
from fr_data.loading.shard_index import ShardIndex
from fr_train.data.selection import Selection

Prepare = Callable[[np.ndarray, int], None]


class ImageReader:
    """Where every selected sample's image lies, and decoding into batch tensors.

    Args:
        selection: the selected samples; positions index its ``keys``.
        index: the shard index of the shards holding them.
        size: output image side.

    Raises:
        DataError: a selected key the shards do not hold.
    """

    def __init__(self, selection: Selection, index: ShardIndex, size: int = 112):
        self.selection = selection
        self.index = index
        self.size = size
        self.shard_ids, self.offsets, self.sizes = index.locate(selection.keys)

    def decode(self, position: int, out: np.ndarray) -> None:
        """Decode selected sample ``position`` into ``out`` (3 x size x size float32).

        Raises:
            DataError: naming the shard and key of an image that does not decode.
        """
        shard = int(self.shard_ids[position])
        data = self.index.read_at(shard, self.offsets[position], self.sizes[position])
        try:
            decode_into(data, out)
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(self.index.shards[shard], f"key {self.selection.keys[position]}",
                            f"image does not decode: {exc}") from None

    def images(self, positions: Sequence[int] | np.ndarray, prepare: Prepare | None = None) -> torch.Tensor:
        """Decode ``positions`` into a (n, 3, size, size) tensor; ``prepare(image, slot)`` runs on each.

        Inside a DataLoader worker the tensor lives in shared memory, so handing it to the training
        process costs no copy.
        """
        images = torch.empty((len(positions), 3, self.size, self.size), dtype=torch.float32)
        if get_worker_info() is not None:
            images.share_memory_()
        pixels = images.numpy()
        for slot, position in enumerate(positions):
            self.decode(int(position), pixels[slot])
            if prepare is not None:
                prepare(pixels[slot], slot)
        return images
