"""The training loop: backbone + objective on the training data, with checkpoints that resume exactly.

:class:`TrainModule` turns one :class:`~fr_train.data.ImageBatch` into a loss: a single backbone pass
over the classification images and whatever the objective's terms declared they need (composer branch
images, a low-resolution copy; teacher embeddings come from a frozen teacher), provided by
:class:`~fr_train.objective.Inputs`, then the objective (margin head or Partial FC + weighted auxiliary
terms) on the :class:`~fr_train.objective.Batch` filled from those features. :class:`Trainer` runs the
steps: learning rate per step, AMP on GPU (bf16, or fp16 with a GradScaler), gradient clipping, logging,
periodic evaluation (rank 0) and checkpoints.

Exact resume: batches are a pure function of ``(data.seed, epoch, rank, step)`` (the data stream
restarts mid-epoch with ``set_epoch(epoch, start_step)``), the learning rate a pure function of the
step, and every other source of randomness (python, numpy, torch, and the generators of Partial FC's
sampling and of the low-resolution copies) is checkpointed, so on CPU a resumed run reproduces the
uninterrupted run's losses bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn

from fr_data import runtime
from fr_data.folders import training_run_folder as run_folder
from fr_data.io.errors import ConfigError, DataError
from fr_train import dist
from fr_train.adversarial.config import attack_passes
from fr_train.adversarial.training import AdversarialTraining, build_adversarial
from fr_train.checkpoints.resume import (CheckpointStore, TrainState, capture_rng, load_tensors, rank_name,
                                         read_state, restore_rng, save_tensors)
from fr_train.checkpoints.weights import load_weights
from fr_train.config import TrainConfig, save_train_config
from fr_train.data import ImageBatch, TrainData, build_train_data
from fr_train.data.selection import summary as selection_summary
from fr_train.evaluation.evaluators import Evaluator, build_evaluators, run_evaluators
from fr_train.logs import MetricsLog, Progress, ThroughputMeter, truncate_metrics
from fr_train.models import get_model
from fr_train.objective import Inputs, Objective, build_inputs, build_objective
from fr_train.objective.batch import Need
from fr_train.objective.build import check_objective_settings
from fr_train.objective.head_init import init_head
from fr_train.optim import build_optimizer, build_schedule

__all__ = ["TrainModule", "Precision", "Trainer", "TrainResult", "build_module", "build_trainer",
           "planned_images_per_step", "run", "seed_all"]


# ---------------------------------------------------------------------------------------------- module
class TrainModule(nn.Module):
    """Everything that is trained: the backbone and the objective, fed by the objective's inputs.

    Args:
        backbone: images -> embeddings.
        objective: classification slot + auxiliary terms.
        inputs: providers of everything the objective's terms need (plain objects: a frozen teacher is
            neither trained nor synchronised); default: none.
        adversarial: the adversarial step (AFA or PGD-AT, :mod:`fr_train.adversarial.training`); None:
            plain training.

    Raises:
        ValueError: a need of the objective that no provider gives.
    """

    def __init__(self, backbone: nn.Module, objective: Objective, inputs: Inputs | None = None,
                 adversarial: AdversarialTraining | None = None):
        super().__init__()
        self.backbone, self.objective = backbone, objective
        self.inputs = inputs if inputs is not None else Inputs()
        self.adversarial = adversarial
        missing = objective.needs - self.inputs.provided
        if missing:
            needed = sorted(need.value for need in missing)
            raise ValueError(f"the objective needs {needed}, which no input provides")

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """RNGs of the objective, its inputs and the adversarial step (checkpointed with the global ones)."""
        extra = self.adversarial.generators if self.adversarial is not None else {}
        return {**self.objective.generators, **self.inputs.generators, **extra}

    def unsynchronised(self) -> list[str]:
        """Parameters and buffers DDP must not synchronise (see :meth:`Objective.unsynchronised_names`)."""
        return [f"objective.{name}" for name in self.objective.unsynchronised_names()]

    def forward(self, batch: ImageBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its named (detached) parts for one batch already on the module's device."""
        if self.adversarial is not None:
            return self.adversarial(self.backbone, self.objective, self.inputs, batch, self)
        out = self.objective(self.inputs.features(self.backbone, batch))
        return out.loss, out.parts


def build_module(cfg: TrainConfig, num_classes: int, device: torch.device) -> TrainModule:
    """The :class:`TrainModule` of a config for ``num_classes`` classes.

    Seeds the global RNGs: ``train.seed`` for the initial weights (equal on every rank), then
    ``train.seed + 1000 * rank`` for everything after (the teacher is built after that).
    """
    seed_all(cfg.train.seed)
    backbone = get_model(cfg.model.name, embedding_size=cfg.model.embedding_size, **cfg.model.options)
    if cfg.model.weights is not None:
        load_weights(backbone, cfg.model.weights)
    objective = build_objective(cfg.objective, embedding_size=cfg.model.embedding_size,
                                num_classes=num_classes, device=device, seed=cfg.train.seed + dist.rank())
    seed_all(cfg.train.seed + 1000 * dist.rank())
    inputs = build_inputs(cfg.objective, objective.needs, device=device, seed=cfg.train.seed + dist.rank(),
                          run=cfg.data.run)
    adversarial = build_adversarial(cfg.adversarial, cfg.train.seed + dist.rank())
    return TrainModule(backbone, objective, inputs, adversarial).to(device)


# ------------------------------------------------------------------------------------------- precision
class Precision:
    """Autocast and gradient scaling: bf16/fp16 on CUDA only; CPU runs fp32 through the same calls.

    Args:
        amp: ``none``, ``bf16`` or ``fp16``.
        device: the training device.
    """

    DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

    def __init__(self, amp: str, device: torch.device):
        self.device_type = device.type
        self.dtype = self.DTYPES.get(amp) if device.type == "cuda" else None
        self.scaler = (torch.amp.GradScaler("cuda", growth_interval=100)
                       if self.dtype is torch.float16 else None)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                      clip: tuple[Sequence[nn.Parameter], float] | None) -> None:
        """Backward, optional gradient-norm clipping (on unscaled gradients), optimiser step."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)
        else:
            loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(clip[0], clip[1])
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()


# --------------------------------------------------------------------------------------------- trainer
def _barrier() -> None:
    if dist.is_dist():
        torch_dist.barrier()


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did: final state, the logged records and the last checkpoint."""

    state: TrainState
    records: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None


class Trainer:
    """Runs the steps of one rank (see the module docstring).

    Args:
        cfg: the resolved config (saved beside every checkpoint).
        data: this rank's training data.
        module: the trained module, on ``device``.
        device: training device.
        evaluators: run on rank 0 every ``train.eval_every`` steps and at the end.
    """

    def __init__(self, cfg: TrainConfig, data: TrainData, module: TrainModule, device: torch.device, *,
                 evaluators: Sequence[Evaluator] = ()):
        self.cfg, self.data, self.module, self.device = cfg, data, module, device
        self.evaluators = list(evaluators)
        self.evaluating = bool(cfg.eval.bins or cfg.eval.pairs_run)  # on every rank (rank 0 evaluates)
        self.rank, self.world_size = dist.rank(), dist.world_size()
        loop, steps_per_epoch = cfg.train, data.batches_per_epoch
        if steps_per_epoch < 1:
            raise ConfigError("the training data yields no batch per epoch (fewer samples than a batch)")
        self.total_steps = loop.max_steps or loop.epochs * steps_per_epoch
        self.optimizer = build_optimizer(module.parameters(), cfg.optim)
        self.schedule = build_schedule(cfg.schedule, cfg.optim.lr, self.total_steps, steps_per_epoch)
        self.precision = Precision(loop.amp, device)
        self.model = self._wrap(module)
        self.sharded = module.objective.classifier is not None and self.world_size > 1
        self.state = TrainState(world_size=self.world_size, sharded=self.sharded)
        self.output = Path(loop.output)
        self.store = CheckpointStore(run_folder.checkpoints_dir(self.output), self.rank, _barrier)
        self.records: list[dict[str, Any]] = []

    def _wrap(self, module: TrainModule) -> nn.Module:
        """The module itself on one rank, else wrapped in DistributedDataParallel."""
        if self.world_size == 1:
            return module
        # Partial FC shards differ per rank and frozen constants never change: neither is synchronised by
        # DDP (no gradient all-reduce, no buffer broadcast).
        ignored = module.unsynchronised()
        if ignored:
            nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, ignored)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            module, device_ids=device_ids, find_unused_parameters=self.cfg.train.find_unused_parameters)

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """Extra RNGs checkpointed with the global ones."""
        return self.module.generators

    # ----------------------------------------------------------------------------------------- steps
    def train_step(self, batch: ImageBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
        """One optimiser update; returns the loss, its parts and the learning rate used."""
        lr = self.schedule.apply(self.optimizer, self.state.step)
        batch = batch.to(self.device, non_blocking=True)
        self.module.train()
        with self.precision.autocast():
            loss, parts = self.model(batch)
        self.optimizer.zero_grad(set_to_none=True)
        clip = self.cfg.train.clip_grad_norm
        params = list(self.module.backbone.parameters())
        self.precision.backward_step(loss, self.optimizer, None if clip is None else (params, clip))
        self.state.step += 1
        self.state.images_seen += self.module.inputs.last_images * self.world_size
        self.state.epoch_step += 1
        if self.state.epoch_step == self.data.batches_per_epoch:
            self.state.epoch, self.state.epoch_step = self.state.epoch + 1, 0
        return loss.detach(), parts, lr

    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train up to the run's last step (or ``stop_after`` steps in all), then checkpoint and evaluate."""
        end = self.total_steps if stop_after is None else min(self.total_steps, stop_after)
        log = MetricsLog(self.output, enabled=self.rank == 0, tensorboard=self.cfg.train.tensorboard)
        bar = Progress(self.total_steps, self.state.step, enabled=self.rank == 0 and self.cfg.train.progress)
        meter, saved_at = ThroughputMeter(), -1
        try:
            while self.state.step < end:
                self.data.set_epoch(self.state.epoch, self.state.epoch_step)
                for batch in self.data:
                    loss, parts, lr = self.train_step(batch)
                    meter.add(len(batch) * self.world_size)
                    self._after_step(loss, parts, lr, log, bar, meter)
                    if self._checkpoint_due(end):
                        saved_at = self._checkpoint()
                    if self.state.step >= end:
                        break
            if saved_at != self.state.step:
                self._checkpoint()
            if self.state.step >= self.total_steps and self.evaluating:
                self._evaluate(log)
        finally:
            bar.close()
            log.close()
        return TrainResult(self.state, self.records, self.store.path(self.state.step))

    def _checkpoint_due(self, end: int) -> bool:
        """Every ``ckpt_every`` steps, or (``ckpt_every`` 0) at every epoch end before the last step."""
        every = self.cfg.train.ckpt_every
        if every:
            return self.state.step % every == 0
        return self.state.epoch_step == 0 and self.state.step < end

    def _after_step(self, loss: torch.Tensor, parts: dict[str, torch.Tensor], lr: float, log: MetricsLog,
                    bar: Progress, meter: ThroughputMeter) -> None:
        """Log (every ``log_every`` steps, losses averaged over ranks; a non-finite loss stops the run)
        and evaluate (every ``eval_every`` steps)."""
        step, loop = self.state.step, self.cfg.train
        if step % loop.log_every == 0 or step == self.total_steps:
            loss, parts = _mean_over_ranks(loss, parts)
            value = float(loss)
            if not np.isfinite(value):
                raise FloatingPointError(f"step {step}: loss is {value} (parts: "
                                         f"{ {k: float(v) for k, v in parts.items()} })")
            record = {"epoch": step / self.data.batches_per_epoch, "lr": lr, "loss": value,
                      **{k: float(v) for k, v in parts.items()}, "img_s": meter.rate(),
                      "images_seen": self.state.images_seen}
            self.records.append({"step": step, **record})
            self.state.metrics = {k: v for k, v in record.items() if isinstance(v, float)}
            log.write(step, record)
            bar.update_to(step, loss=value, img_s=record["img_s"])
        if loop.eval_every and step % loop.eval_every == 0 and step < self.total_steps and self.evaluating:
            self._evaluate(log)

    def _evaluate(self, log: MetricsLog) -> dict[str, float]:
        """Run the evaluators on rank 0 while the other ranks wait; log and return the metrics."""
        metrics = run_evaluators(self.evaluators, self.module.backbone) if self.rank == 0 else {}
        if self.rank == 0:
            self.records.append({"step": self.state.step, **metrics})
            log.write(self.state.step, metrics)
        _barrier()
        return metrics

    # ----------------------------------------------------------------------------------- checkpoints
    def _checkpoint(self) -> int:
        """Save a checkpoint of the current step (all ranks take part); return the step."""
        def shared(folder: Path) -> None:
            save_train_config(self.cfg, run_folder.config_path(folder))
            save_tensors(_cpu_state(self.module.backbone), run_folder.weights_path(folder))
            save_tensors(_cpu(self.module.objective.replicated_state_dict()), folder / "objective.pt")
            if self.precision.scaler is not None:
                save_tensors(self.precision.scaler.state_dict(), folder / "scaler.pt")

        def own(folder: Path) -> None:
            if self.rank == 0 or self.sharded:
                if self.module.objective.classifier is not None:
                    save_tensors(_cpu_state(self.module.objective.classifier),
                                 folder / rank_name("classifier.pt", self.rank, self.sharded))
                save_tensors(self.optimizer.state_dict(),
                             folder / rank_name("optimizer.pt", self.rank, self.sharded))
            save_tensors(capture_rng(self.generators), folder / f"rng.rank{self.rank}.pt")

        self.store.save(self.state, shared, own)
        self.store.prune(self.cfg.train.keep_checkpoints)
        return self.state.step

    def restore(self, checkpoint: str | os.PathLike) -> None:
        """Load a checkpoint written by this trainer's config (same world size when sharded).

        Raises:
            DataError: naming the checkpoint when it does not fit this run.
        """
        folder = Path(checkpoint)
        state = read_state(folder)
        if state.sharded and state.world_size != self.world_size:
            raise DataError(folder, "state.json",
                            f"written by {state.world_size} ranks with sharded Partial FC; "
                            f"resume with the same number, not {self.world_size}")
        self.module.backbone.load_state_dict(load_tensors(run_folder.weights_path(folder), self.device))
        rank_file = lambda name: folder / rank_name(name, self.rank, state.sharded)  # noqa: E731
        sharded = (load_tensors(rank_file("classifier.pt"), self.device)
                   if self.module.objective.classifier is not None else None)
        self.module.objective.load_state_dicts(load_tensors(folder / "objective.pt", self.device), sharded)
        self.optimizer.load_state_dict(load_tensors(rank_file("optimizer.pt"), self.device))
        if self.precision.scaler is not None and (folder / "scaler.pt").is_file():
            self.precision.scaler.load_state_dict(load_tensors(folder / "scaler.pt"))
        rng = folder / f"rng.rank{self.rank}.pt"
        if rng.is_file():
            restore_rng(load_tensors(rng), self.generators)
        self.state = TrainState(**{**asdict(state), "world_size": self.world_size, "sharded": self.sharded})


def planned_images_per_step(cfg: TrainConfig) -> int:
    """Images one step forwards on one rank according to ``cfg`` (what :attr:`Inputs.last_images` counts):
    ``batch_size``, plus ``(1 + hard branches) * (identities + 2 * pairs)`` when a term needs the composer's
    branches, plus ``batch_size`` again when a term needs a low-resolution copy (teacher passes are not
    counted: the frozen teacher runs without gradient), plus ``batch_size`` per adversarial pass
    (:func:`fr_train.adversarial.config.attack_passes`: each PGD step, and AFA's attacked batch). Equal-compute comparisons divide an image budget by
    this to get each run's step count."""
    data, composer = cfg.data, cfg.data.composer
    needs = set().union(*check_objective_settings(cfg.objective).values())
    branches = (1 + len(composer.hard)) * (composer.identities + 2 * composer.pairs)
    return (data.batch_size + (branches if Need.BRANCHES in needs else 0)
            + (data.batch_size if Need.LOWRES in needs else 0) + attack_passes(cfg.adversarial) * data.batch_size)


def _mean_over_ranks(loss: torch.Tensor, parts: dict[str, torch.Tensor]
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and parts averaged over ranks (for logging; every rank must call it at the same step)."""
    if dist.world_size() == 1:
        return loss, parts
    values = torch.stack([loss.float(), *(v.float() for v in parts.values())])
    values = dist.all_reduce(values, "sum") / dist.world_size()
    return values[0], dict(zip(parts, values[1:]))


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return _cpu(module.state_dict())


# ------------------------------------------------------------------------------------------------- run
def _resume_path(cfg: TrainConfig, resume: str | os.PathLike | bool | None) -> Path | None:
    """``True``: the latest checkpoint of the run folder (None when there is none yet); a path: itself."""
    if resume is None or resume is False:
        return None
    if resume is True:
        return CheckpointStore(run_folder.checkpoints_dir(cfg.train.output)).latest()
    return Path(resume)


def build_trainer(cfg: TrainConfig, device: torch.device) -> Trainer:
    """Data, module (with the objective's inputs) and evaluators of this rank, in a :class:`Trainer`."""
    data = build_train_data(cfg.data, rank=dist.rank(), world_size=dist.world_size())
    module = build_module(cfg, data.num_classes, device)
    if cfg.init.head is not None:
        init_head(module.objective.head, cfg.init, data.selection)
    evaluators = build_evaluators(cfg.eval, cfg.data.shards) if dist.rank() == 0 else []
    return Trainer(cfg, data, module, device, evaluators=evaluators)


def run(cfg: TrainConfig, *, resume: str | os.PathLike | bool | None = None,
        stop_after: int | None = None) -> TrainResult:
    """Train ``cfg`` in this process (one rank of the process group, if one is running).

    Args:
        cfg: validated config.
        resume: a checkpoint folder, or True for the run folder's latest checkpoint (a fresh start when
            there is none).
        stop_after: stop (with a checkpoint) once this many steps are done, as if preempted.
    """
    if cfg.train.cpu_threads is not None:
        torch.set_num_threads(cfg.train.cpu_threads)
    device = runtime.resolve_device(cfg.train.device)
    trainer = build_trainer(cfg, device)
    checkpoint = _resume_path(cfg, resume)
    if checkpoint is not None:
        trainer.restore(checkpoint)
    if trainer.rank == 0:
        trainer.output.mkdir(parents=True, exist_ok=True)
        save_train_config(cfg, run_folder.config_path(trainer.output))
        trainer.data.selection.save(trainer.output)  # label_map, selected keys, selection.json (report)
        print(selection_summary(trainer.data.selection.report), flush=True)
        truncate_metrics(run_folder.metrics_path(trainer.output), trainer.state.step)
    _barrier()
    return trainer.fit(stop_after)
