"""Model checkpoints: safe loading (re-exported from :mod:`fr_data.embed.weights`) and atomic saving."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from fr_data.embed.weights import STRIP_PREFIXES, WRAPPER_KEYS, load_state_dict, load_weights
from fr_data.io.atomic import atomic_path

__all__ = ["load_state_dict", "load_weights", "save_state_dict", "WRAPPER_KEYS", "STRIP_PREFIXES"]


def save_state_dict(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model.state_dict()`` (plain, unwrapped, CPU tensors) to ``path`` atomically."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)
