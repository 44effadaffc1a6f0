"""Arms: each arm's training config for one seed, with the step count that gives it equal compute.

An arm's config is the fine-tuning recipe (``finetune.config`` + ``finetune.overrides``) with the arm's
``train:`` overrides merged over it (after those of the arm it ``extends``), then the experiment's own
settings: the shards, the mining run (arms with ``mining: true``), the pretrained backbone as initial
weights (and its classifier as the head's, ``finetune.init_head``), the seed (``data.seed`` and ``train.seed``), the device and the run folder.

Equal compute: every arm forwards ``finetune.images`` images per seed. A step of an arm forwards
:func:`fr_train.trainer.planned_images_per_step` images (classification batch, composer branches,
low-resolution copies), so the arm trains ``round(images / per_step)`` steps; an arm whose rounding
misses the budget by more than ``finetune.tolerance`` is a config error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fr_data.io.config import deep_merge
from fr_data.io.errors import ConfigError
from fr_train.config import TrainConfig, load_train_config
from fr_train.trainer import planned_images_per_step
from hardmine.experiment.config import ArmConfig, ExperimentConfig

__all__ = ["ArmPlan", "arm_chain", "arm_overrides", "uses_mining", "plan_arm", "check_arms"]


@dataclass(frozen=True)
class ArmPlan:
    """One (arm, seed) fine-tuning run: its resolved config and its compute."""

    arm: str
    seed: int
    config: TrainConfig
    images_per_step: int
    steps: int

    @property
    def images(self) -> int:
        """Images the run forwards in all."""
        return self.images_per_step * self.steps


def arm_chain(cfg: ExperimentConfig, name: str) -> list[ArmConfig]:
    """The arm and the arms it extends, most basic first.

    Raises:
        ConfigError: an unknown arm or a circular ``extends``.
    """
    chain, seen = [], []
    while name is not None:
        if name not in cfg.arms:
            raise ConfigError(f"unknown arm {name!r} (arms: {sorted(cfg.arms)})")
        if name in seen:
            raise ConfigError(f"arms: circular extends {seen + [name]}")
        seen.append(name)
        arm = cfg.arm(name)
        chain.append(arm)
        name = arm.extends
    return chain[::-1]


def arm_overrides(cfg: ExperimentConfig, name: str, head: Path | None = None) -> dict[str, Any]:
    """The arm's training overrides over the recipe's, ``extends`` chain applied; with ``head`` (the
    pretrained classifier) and ``finetune.init_head``, the head starts from it unless the arm says not."""
    merged = dict(cfg.finetune.overrides)
    if head is not None and cfg.finetune.init_head:
        merged = deep_merge(merged, {"init": {"head": str(head)}})
    for arm in arm_chain(cfg, name):
        merged = deep_merge(merged, arm.train)
    return merged


def uses_mining(cfg: ExperimentConfig, name: str) -> bool:
    """Whether the arm (or an arm it extends) reads the mining run."""
    return any(arm.mining for arm in arm_chain(cfg, name))


def _settings(cfg: ExperimentConfig, name: str, seed: int, paths: dict[str, Path], device: str,
              steps: int | None) -> dict[str, Any]:
    """The experiment's own settings of an arm's run (they win over the arm's overrides)."""
    run = str(paths["mined"]) if uses_mining(cfg, name) else None
    return {"data": {"shards": str(paths["shards"]), "run": run, "seed": seed},
            "model": {"weights": str(paths["weights"])},
            "train": {"output": str(paths["output"]), "seed": seed, "device": device, "max_steps": steps}}


def plan_arm(cfg: ExperimentConfig, name: str, seed: int, paths: dict[str, Path],
             device: str = "cpu") -> ArmPlan:
    """The run of arm ``name`` at ``seed``.

    Args:
        paths: ``shards``, ``mined`` (mining run), ``weights`` (pretrained ``model.pt``), ``output``.

    Raises:
        ConfigError: a bad arm override (naming the arm and the key), or an arm that cannot meet the
            image budget within the tolerance.
    """
    source = cfg.path(cfg.finetune.config)
    overrides = arm_overrides(cfg, name, paths["weights"].parent / "objective.pt")
    try:
        probe = load_train_config(source, deep_merge(overrides, _settings(cfg, name, seed, paths, device, 1)))
    except ConfigError as exc:
        raise ConfigError(f"arms.{name}: {exc}") from None
    per_step = planned_images_per_step(probe)
    steps = max(1, round(cfg.finetune.images / per_step))
    off = abs(steps * per_step - cfg.finetune.images) / cfg.finetune.images
    if off > cfg.finetune.tolerance:
        raise ConfigError(f"arms.{name}: {per_step} images per step cannot meet finetune.images "
                          f"{cfg.finetune.images} within {cfg.finetune.tolerance:.0%} ({steps} steps: {off:.1%} off)")
    config = load_train_config(source, deep_merge(overrides, _settings(cfg, name, seed, paths, device, steps)))
    return ArmPlan(name, seed, config, per_step, steps)


def check_arms(cfg: ExperimentConfig, arms: list[str]) -> None:
    """Refuse an empty or unknown arm list (ConfigError naming the unknown arms), and any arm whose training
    config is invalid or cannot meet the image budget: before anything runs, not after hours of it."""
    if not arms:
        raise ConfigError("--arms: no arm given")
    unknown = [a for a in arms if a not in cfg.arms]
    if unknown:
        raise ConfigError(f"--arms: unknown arm(s) {unknown} (arms of {cfg.source}: {sorted(cfg.arms)})")
    placeholder = {name: Path(name) for name in ("shards", "mined", "weights", "output")}
    for arm in arms:
        plan_arm(cfg, arm, 0, placeholder)
