"""The training config: one dataclass tree, loaded from YAML (``base:`` chain + overrides), validated.

``TrainConfig`` composes the training data (:class:`fr_train.data.config.DataConfig`), the backbone,
the objective (:class:`fr_train.objective.config.ObjectiveConfig`: margin head or Partial FC, auxiliary
terms, the teacher), optimiser, learning-rate schedule, loop settings and evaluation. Every section has
defaults, so an experiment file only states what differs from its base::

    base: base.yaml
    model: {name: iresnet100}
    objective: {head: {name: curricularface, s: 64.0, m: 0.5}, terms: {ddl: {weight: 1.0}}}

An unknown or misspelt key, or a value of the wrong type, raises :class:`fr_data.io.errors.ConfigError`
naming the file and the key path; a key that moved (:data:`fr_train.moved_keys.MOVED_KEYS`) names its
new place; :func:`validate_train_config` checks what types cannot express.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from fr_data.io.config import deep_merge, dump_config, from_dict, load_yaml_with_bases
from fr_data.io.errors import ConfigError
from fr_train.adversarial.config import AdversarialConfig, adversarial_checks
from fr_train.data.config import DataConfig, validate_data_config
from fr_train.models.config import ModelConfig
from fr_train.moved_keys import reject_moved_keys
from fr_train.objective.build import check_objective_config
from fr_train.objective.config import ObjectiveConfig

__all__ = [
    "ModelConfig", "ObjectiveConfig", "OptimConfig", "ScheduleConfig", "LoopConfig", "EvalConfig",
    "InitConfig", "TrainConfig", "load_train_config", "parse_overrides", "validate_train_config",
    "save_train_config",
]


@dataclass
class OptimConfig:
    """Optimiser (one parameter group: backbone, head/classifier and trainable loss parameters).

    Attributes:
        name: ``sgd`` or ``adamw`` (see :data:`fr_train.optim.OPTIMIZERS`).
        lr: peak learning rate (after warmup).
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        weight_decay: L2 (SGD) or decoupled (AdamW) weight decay.
        betas: AdamW betas.
        eps: AdamW epsilon.
    """

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class ScheduleConfig:
    """Per-step learning-rate schedule: linear warmup, then a decay (see :mod:`fr_train.optim`).

    Attributes:
        name: ``polynomial``, ``cosine``, ``multistep`` or ``constant``.
        warmup_epochs: warmup length in epochs (may be fractional); ``warmup_steps`` wins when set.
        warmup_steps: warmup length in steps.
        power: polynomial exponent (arcface_torch: 2).
        min_lr: learning rate the decay ends at (polynomial, cosine).
        milestones: epochs at which ``multistep`` multiplies the rate by ``gamma``.
        gamma: ``multistep`` factor.
    """

    name: Literal["polynomial", "cosine", "multistep", "constant"] = "polynomial"
    warmup_epochs: float = 0.0
    warmup_steps: int | None = None
    power: float = 2.0
    min_lr: float = 0.0
    milestones: list[float] = field(default_factory=list)
    gamma: float = 0.1


@dataclass
class LoopConfig:
    """The training loop (the ``train:`` section).

    Attributes:
        epochs: epochs to train; the schedule spans ``epochs * batches_per_epoch`` steps.
        max_steps: train (and schedule) this many steps instead; None: ``epochs`` decide.
        amp: mixed precision on GPU (``bf16``, or ``fp16`` with a GradScaler); CPU always runs fp32.
        clip_grad_norm: clip the backbone's gradient norm to this value; None: no clipping.
        log_every: steps between metric records (``metrics.jsonl``, TensorBoard).
        ckpt_every: steps between checkpoints (0: only at the end of every epoch and of training).
        keep_checkpoints: most recent checkpoints kept (older ones are deleted).
        eval_every: steps between evaluations (0: only at the end of training).
        output: run folder (checkpoints, ``config.yaml``, ``metrics.jsonl``, TensorBoard events, and the
            resolved selection: ``selection.json``, ``selected.parquet``, ``label_map.parquet``).
        seed: seeds model initialisation and the training RNGs (the data has its own ``data.seed``).
        device: ``auto`` (the local GPU when there is one), ``cpu`` or ``cuda``.
        progress: show a progress bar on rank 0.
        tensorboard: write TensorBoard events when the ``tensorboard`` package is installed.
        find_unused_parameters: passed to DistributedDataParallel.
        cpu_threads: torch intra-op threads per process (None: torch's default).
    """

    epochs: int = 20
    max_steps: int | None = None
    amp: Literal["none", "bf16", "fp16"] = "none"
    clip_grad_norm: float | None = 5.0
    log_every: int = 50
    ckpt_every: int = 0
    keep_checkpoints: int = 2
    eval_every: int = 0
    output: str = "runs/experiment"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True
    tensorboard: bool = True
    find_unused_parameters: bool = False
    cpu_threads: int | None = None


@dataclass
class EvalConfig:
    """Periodic evaluation (rank 0).

    Attributes:
        bins: InsightFace ``.bin`` verification packs (accuracy of flip-sum embeddings, 10 folds).
        pairs_run: a mining run folder whose ``pairs.parquet`` is evaluated: ``easy_pos`` and
            ``hard_pos`` pairs against the ``hard_neg`` pairs (TPR@FPR and the easy/hard gap); images
            come from ``data.shards``.
        max_pairs: at most this many pairs of each kind (the first ones, in file order).
        fprs: FPR levels of the TPR@FPR figures.
        batch_size: images per forward pass.
        folds: folds of the accuracy protocol.
    """

    bins: list[str] = field(default_factory=list)
    pairs_run: str | None = None
    max_pairs: int = 5000
    fprs: list[float] = field(default_factory=lambda: [1e-1, 1e-2, 1e-3])
    batch_size: int = 64
    folds: int = 10


@dataclass
class InitConfig:
    """Initial weights besides the backbone's (``model.weights``), e.g. when fine-tuning a trained run.

    Attributes:
        head: checkpoint holding a classifier trained on the shard labels (``objective.pt`` of a run that
            selected every sample, so that row ``c`` is shard label ``c``); the objective's head starts from
            it, each (possibly merged) class at the normalised mean of its old classes' normalised rows.
            None: random initialisation.
        head_key: key of the ``(C, D)`` classifier in that checkpoint.
    """

    head: str | None = None
    head_key: str = "head.weight"


@dataclass
class TrainConfig:
    """A whole training run. Sections: see the classes of their types."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    init: InitConfig = field(default_factory=InitConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "objective.head.name=cosface"]`` -> a nested mapping (values parsed as YAML).

    Raises:
        ConfigError: an item without ``=`` or with an empty key part.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected key.sub=value")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is already set to a value")
        node[parts[-1]] = yaml.safe_load(text)
    return out


def load_train_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Load and validate a training config (``base:`` chain, then ``overrides``).

    Raises:
        ConfigError: naming the file and the offending key (for a key that moved: its new key).
    """
    data = deep_merge(load_yaml_with_bases(path), overrides or {})
    try:
        reject_moved_keys(data)
        cfg = from_dict(TrainConfig, data)
        validate_train_config(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return cfg


def _range_checks(cfg: TrainConfig) -> list[tuple[bool, str]]:
    loop, sched, optim = cfg.train, cfg.schedule, cfg.optim
    return [
        (cfg.model.embedding_size >= 1, f"model.embedding_size must be >= 1, got {cfg.model.embedding_size}"),
        (isinstance(cfg.model.options.get("dual_bn", False), bool),
         f"model.options.dual_bn must be true or false, got {cfg.model.options.get('dual_bn')!r}"),
        (optim.lr > 0, f"optim.lr must be > 0, got {optim.lr}"),
        (optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {optim.weight_decay}"),
        (len(optim.betas) == 2, f"optim.betas must be [beta1, beta2], got {optim.betas}"),
        (loop.epochs >= 1, f"train.epochs must be >= 1, got {loop.epochs}"),
        (loop.max_steps is None or loop.max_steps >= 1,
         f"train.max_steps must be >= 1, got {loop.max_steps}"),
        (loop.log_every >= 1, f"train.log_every must be >= 1, got {loop.log_every}"),
        (loop.ckpt_every >= 0, f"train.ckpt_every must be >= 0, got {loop.ckpt_every}"),
        (loop.eval_every >= 0, f"train.eval_every must be >= 0, got {loop.eval_every}"),
        (loop.keep_checkpoints >= 1, f"train.keep_checkpoints must be >= 1, got {loop.keep_checkpoints}"),
        (loop.clip_grad_norm is None or loop.clip_grad_norm > 0,
         f"train.clip_grad_norm must be > 0 or null, got {loop.clip_grad_norm}"),
        (sched.warmup_epochs >= 0, f"schedule.warmup_epochs must be >= 0, got {sched.warmup_epochs}"),
        (sched.warmup_steps is None or sched.warmup_steps >= 0,
         f"schedule.warmup_steps must be >= 0, got {sched.warmup_steps}"),
        (0 <= sched.min_lr <= optim.lr, f"schedule.min_lr must lie in [0, optim.lr], got {sched.min_lr}"),
        (cfg.eval.max_pairs >= 1, f"eval.max_pairs must be >= 1, got {cfg.eval.max_pairs}"),
        (all(0 < f <= 1 for f in cfg.eval.fprs), f"eval.fprs must lie in (0, 1], got {cfg.eval.fprs}"),
        (cfg.init.head is None or (cfg.objective.head is not None and not cfg.objective.partial_fc.enabled),
         "init.head initialises the objective's head; with objective.partial_fc.enabled or no head there is "
         "none"),
        (cfg.objective.terms.fan_unpaired is None
         or cfg.objective.terms.fan_unpaired.branch <= len(cfg.data.composer.hard),
         "objective.terms.fan_unpaired.branch must name a hard composer branch (1..len(data.composer.hard)), "
         f"got {_fan_branch(cfg)} with {len(cfg.data.composer.hard)} hard branches"),
    ]


def _fan_branch(cfg: TrainConfig) -> int | None:
    fan = cfg.objective.terms.fan_unpaired
    return None if fan is None else fan.branch


def validate_train_config(cfg: TrainConfig) -> None:
    """Check ranges and cross-section rules the types cannot express, and the objective: head and term
    settings, and that every input a term needs is provided (composer branches: ``data.composer``;
    per-sample targets: ``data.run``); the ``adversarial:`` section against the model and the head.

    Raises:
        ConfigError: naming the key.
    """
    validate_data_config(cfg.data)
    dual_bn = cfg.model.options.get("dual_bn", False)
    checks = _range_checks(cfg) + adversarial_checks(cfg.adversarial, dual_bn=dual_bn is True,
                                                     head=cfg.objective.head is not None,
                                                     partial_fc=cfg.objective.partial_fc.enabled)
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    check_objective_config(cfg.objective, composer=cfg.data.composer.enabled, run=cfg.data.run is not None)


def save_train_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config (what actually ran) as YAML, atomically."""
    dump_config(cfg, path)
