"""Start a run's classification head from another run's classifier (fine-tuning: ``init.head``).

The source classifier must have been trained on the shard labels themselves (a run that selected every
sample: its row ``c`` is shard label ``c``). The new run's selection may drop samples and merge classes
(:mod:`fr_train.data.selection`): each new class starts at the mean of the rows of the old classes merged
into it (one row for an unmerged class: the source's own centre, at the source's scale).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.checkpoints.resume import load_tensors
from fr_train.config import InitConfig
from fr_train.data.selection import Selection

__all__ = ["merged_rows", "init_head"]


def merged_rows(weight: torch.Tensor, old_classes: np.ndarray, new_of_old: np.ndarray,
                num_classes: int) -> torch.Tensor:
    """``(num_classes, D)``: row ``g`` is the mean of ``weight[c]`` over the old classes ``c`` with
    ``new_of_old == g``."""
    rows = weight.float()[torch.as_tensor(old_classes, dtype=torch.long)]
    groups = torch.as_tensor(new_of_old, dtype=torch.long)
    sums = torch.zeros(num_classes, weight.shape[1]).index_add_(0, groups, rows)
    counts = torch.bincount(groups, minlength=num_classes).clamp(min=1).unsqueeze(1)
    return sums / counts


def init_head(head: nn.Module | None, cfg: InitConfig, selection: Selection) -> None:
    """Copy the merged source rows into ``head.weight`` (in place).

    Raises:
        ConfigError: naming the checkpoint when the key is missing, or its classifier does not cover the
            selected shard labels or has another embedding size than the head.
    """
    if head is None or getattr(head, "weight", None) is None:
        raise ConfigError("init.head: the objective has no classification head with a weight to initialise")
    state = load_tensors(cfg.head)
    weight = state.get(cfg.head_key) if isinstance(state, dict) else None
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise ConfigError(f"{cfg.head}: init.head_key {cfg.head_key!r} is not a (C, D) tensor in this checkpoint")
    needed = int(selection.old_classes.max()) + 1
    if weight.shape[0] < needed or weight.shape[1] != head.weight.shape[1]:
        raise ConfigError(f"{cfg.head}: classifier of shape {tuple(weight.shape)} cannot start a head over shard "
                          f"labels up to {needed - 1} with {head.weight.shape[1]}-d embeddings")
    rows = merged_rows(weight, selection.old_classes, selection.new_of_old, selection.num_classes)
    with torch.no_grad():
        head.weight.copy_(rows.to(head.weight.device, head.weight.dtype))
