"""Shared helpers of the fr_train tests: the tiny training config over the 6 x 6 tiny shards (and its
module-scoped ``tiny`` fixture), and small modules that make the trainer's wiring traceable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from fr_data.io.config import deep_merge
from fr_train.config import TrainConfig, load_train_config
from tests.fr_train.data.builders import make_tiny_data
from tests.repo import ROOT

CONFIG = ROOT / "configs" / "synth_tiny.yaml"


def tiny_overrides(tiny, output: Path, **sections: Any) -> dict[str, Any]:
    """Overrides of synth_tiny.yaml for the 6 x 6 tiny shards: batch 4, few steps, no progress bar."""
    base = {"data": {"shards": str(tiny.shards), "run": str(tiny.run), "batch_size": 4, "num_workers": 0},
            "model": {"embedding_size": 16},
            "schedule": {"warmup_steps": 2},
            "train": {"max_steps": 6, "log_every": 1, "ckpt_every": 0, "output": str(output),
                      "progress": False}}
    return deep_merge(base, sections)


def tiny_config(tiny, output: Path, **sections: Any) -> TrainConfig:
    """synth_tiny.yaml with :func:`tiny_overrides` and ``sections`` applied."""
    return load_train_config(CONFIG, tiny_overrides(tiny, output, **sections))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny shards and mining run (``tests.fr_train.data.builders.make_tiny_data``), once per module."""
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


class Probe(nn.Module):
    """An auxiliary 'loss' that records the Batch it is given and returns 0."""

    def __init__(self):
        super().__init__()
        self.seen = None

    def batch_loss(self, batch):
        self.seen = batch
        return batch.embeddings.sum() * 0.0


class Identity(nn.Module):
    """Backbone whose embedding of an image is its first pixel's three channels (traceable rows)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x[:, :, 0, 0] * self.scale


def pixels(values: list[float]) -> torch.Tensor:
    """One 3 x 2 x 2 image per value, every pixel equal to it (its embedding under Identity: 3 x it)."""
    return torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).clone()
