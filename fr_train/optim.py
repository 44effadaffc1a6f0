"""Optimisers and per-step learning-rate schedules.

A schedule is a pure function of the step: ``lr(step)`` for the ``step``-th optimiser update (0-based),
so resuming needs nothing but the step counter. With base rate ``lr``, warmup ``W`` steps and ``T``
steps in total:

* warmup (``step < W``): ``lr * (step + 1) / W`` (reaches ``lr`` on the last warmup step);
* then, with progress ``p = (step - W) / (T - W)`` in ``[0, 1)``:

  - ``polynomial``: ``min_lr + (lr - min_lr) * (1 - p) ** power`` (arcface_torch's PolynomialLRWarmup
    with ``power = 2``),
  - ``cosine``: ``min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2``,
  - ``multistep``: ``lr * gamma ** k``, ``k`` = milestones (in epochs) already passed,
  - ``constant``: ``lr``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.config import OptimConfig, ScheduleConfig

__all__ = ["OPTIMIZERS", "DECAYS", "build_optimizer", "StepSchedule", "build_schedule"]

OptimizerFactory = Callable[[list[nn.Parameter], OptimConfig], torch.optim.Optimizer]
#: ``decay(progress in [0, 1), cfg, epochs_done) -> factor in [0, 1]`` of ``lr - min_lr`` (see module doc).
Decay = Callable[[float, ScheduleConfig, float], float]


def _sgd(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def _adamw(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


#: Optimiser name -> factory.
OPTIMIZERS: dict[str, OptimizerFactory] = {"sgd": _sgd, "adamw": _adamw}


def build_optimizer(parameters: Iterable[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The configured optimiser over the trainable ``parameters`` (one group)."""
    params = [p for p in parameters if p.requires_grad]
    if cfg.name not in OPTIMIZERS:
        raise ConfigError(f"optim.name: unknown optimiser {cfg.name!r}; known: {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[cfg.name](params, cfg)


def _polynomial(progress: float, cfg: ScheduleConfig, epochs_done: float) -> float:
    return (1.0 - progress) ** cfg.power


def _cosine(progress: float, cfg: ScheduleConfig, epochs_done: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _multistep(progress: float, cfg: ScheduleConfig, epochs_done: float) -> float:
    return cfg.gamma ** sum(epochs_done >= m for m in cfg.milestones)


def _constant(progress: float, cfg: ScheduleConfig, epochs_done: float) -> float:
    return 1.0


#: Schedule name -> decay after warmup.
DECAYS: dict[str, Decay] = {"polynomial": _polynomial, "cosine": _cosine, "multistep": _multistep,
                            "constant": _constant}


@dataclass(frozen=True)
class StepSchedule:
    """Learning rate per optimiser step: linear warmup then a decay (see the module docstring).

    Attributes:
        base_lr: peak rate.
        total_steps: steps of the whole run (``T``).
        warmup_steps: warmup length (``W``).
        steps_per_epoch: converts steps to epochs for ``multistep`` milestones.
        cfg: the schedule section (decay name, power, min_lr, milestones, gamma).
    """

    base_lr: float
    total_steps: int
    warmup_steps: int
    steps_per_epoch: int
    cfg: ScheduleConfig

    def lr(self, step: int) -> float:
        """Learning rate of the ``step``-th update (0-based)."""
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        factor = DECAYS[self.cfg.name](progress, self.cfg, step / self.steps_per_epoch)
        if self.cfg.name == "multistep":
            return self.base_lr * factor
        return self.cfg.min_lr + (self.base_lr - self.cfg.min_lr) * factor

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every parameter group's rate for update ``step``; return it."""
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr


def build_schedule(cfg: ScheduleConfig, base_lr: float, total_steps: int,
                   steps_per_epoch: int) -> StepSchedule:
    """The schedule of a run of ``total_steps`` steps with ``steps_per_epoch`` steps per epoch.

    Raises:
        ConfigError: an unknown schedule name, or a warmup as long as the whole run.
    """
    if cfg.name not in DECAYS:
        raise ConfigError(f"schedule.name: unknown schedule {cfg.name!r}; known: {sorted(DECAYS)}")
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(cfg.warmup_epochs * steps_per_epoch)
    if warmup >= total_steps and warmup > 0:
        raise ConfigError(f"schedule: warmup ({warmup} steps) must be shorter than the run "
                          f"({total_steps} steps)")
    return StepSchedule(base_lr, total_steps, warmup, max(1, steps_per_epoch), cfg)
