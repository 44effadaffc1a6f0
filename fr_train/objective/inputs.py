"""What the trainer gives the objective: one backbone pass over a batch and everything its terms need.

Each :class:`~fr_train.objective.batch.Need` has a provider (:data:`PROVIDERS`): the composer's branch
images, a low-resolution copy of the batch, the frozen teacher, the mining run's per-sample targets. :func:`build_inputs` makes the providers
of an objective's needs and nothing else; :meth:`Inputs.features` embeds the classification images and
every provider's images in one backbone pass (in :class:`Need` order) and fills the objective's
:class:`~fr_train.objective.batch.Batch` from the features.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from fr_data.folders import run_folder as rf
from fr_data.io.errors import ConfigError, DataError
from fr_train.data import ImageBatch
from fr_train.objective.batch import Batch, Need
from fr_train.objective.config import ObjectiveConfig
from fr_train.objective.kd import FrozenTeacher, LowResCopy

__all__ = ["Provider", "BranchFeatures", "LowResFeatures", "TeacherFeatures", "RunTargets", "Inputs",
           "InputContext", "PROVIDERS", "build_inputs"]


class Provider(Protocol):
    """Gives one :class:`Need`: images to embed with the backbone, and how their features fill the batch."""

    need: Need
    generators: dict[str, torch.Generator]  # RNGs the trainer checkpoints

    def images(self, batch: ImageBatch) -> list[torch.Tensor]:
        """Extra images for the backbone pass (possibly none)."""

    def fill(self, out: Batch, batch: ImageBatch, features: Sequence[torch.Tensor]) -> None:
        """Set this need's fields of ``out`` from the features of :meth:`images`."""


class BranchFeatures:
    """Composer branches: negatives, pos_a and pos_b of every branch, embedded by the student."""

    need = Need.BRANCHES
    generators: dict[str, torch.Generator] = {}

    def images(self, batch: ImageBatch) -> list[torch.Tensor]:
        if not batch.branches:
            raise ValueError("the objective needs composer branches but the batch has none "
                             "(data.composer.enabled)")
        return [t for b in batch.branches for t in (b.neg_images, b.pos_a, b.pos_b)]

    def fill(self, out: Batch, batch: ImageBatch, features: Sequence[torch.Tensor]) -> None:
        """DDL's lists and OT's reference (the easy branch's features, with their labels)."""
        negs, pos_a, pos_b = features[0::3], features[1::3], features[2::3]
        out.neg_branches, out.pos_a, out.pos_b = list(negs), list(pos_a), list(pos_b)
        easy = batch.branches[0]
        out.reference = torch.cat([negs[0], pos_a[0], pos_b[0]])
        out.reference_labels = torch.cat([easy.neg_labels, easy.pos_labels, easy.pos_labels])


class LowResFeatures:
    """The student's embeddings of a low-resolution copy of the classification images."""

    need = Need.LOWRES

    def __init__(self, copy: LowResCopy):
        self.copy = copy
        self.generators = {"lowres": copy.generator}

    def images(self, batch: ImageBatch) -> list[torch.Tensor]:
        return [self.copy(batch.images)]

    def fill(self, out: Batch, batch: ImageBatch, features: Sequence[torch.Tensor]) -> None:
        out.lowres_embeddings = features[0]


class TeacherFeatures:
    """The frozen teacher's embeddings of the classification images (no gradient, no student pass)."""

    need = Need.TEACHER
    generators: dict[str, torch.Generator] = {}

    def __init__(self, teacher: FrozenTeacher):
        self.teacher = teacher

    def images(self, batch: ImageBatch) -> list[torch.Tensor]:
        return []

    def fill(self, out: Batch, batch: ImageBatch, features: Sequence[torch.Tensor]) -> None:
        out.teacher_embeddings = self.teacher(batch.images)


class RunTargets:
    """Per-sample targets: one column of the mining run's ``samples.parquet``, looked up by sample key.

    Args:
        keys: sample keys, sorted (numpy str array).
        values: float32 target of each key (NaN: none).
    """

    need = Need.TARGETS
    generators: dict[str, torch.Generator] = {}

    def __init__(self, keys: np.ndarray, values: np.ndarray):
        self.keys, self.values = keys, values

    @classmethod
    def from_run(cls, run: str | os.PathLike, column: str) -> RunTargets:
        """Read ``column`` of ``run``'s samples table (a float column; nulls become NaN).

        Raises:
            DataError: the column is missing or not numeric (naming the file).
        """
        path = rf.table_path(run, "samples")
        if path.is_file() and column not in pq.read_schema(path).names:
            raise DataError(path, f"column {column!r}", "no such column for objective.target_column")
        table = rf.read(run, "samples", columns=["key", column])
        values = table.column(column)
        if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
            raise DataError(path, f"column {column!r}", f"targets must be numeric, not {values.type}")
        keys = table.column("key").to_numpy(zero_copy_only=False).astype(str)
        floats = values.cast(pa.float32()).fill_null(np.nan).to_numpy().astype(np.float32)
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], floats[order])

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        """Targets of ``keys`` (NaN for a key the run does not hold)."""
        wanted = np.asarray(list(keys), dtype=str)
        out = np.full(len(wanted), np.nan, dtype=np.float32)
        if len(self.keys):
            pos = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
            hit = self.keys[pos] == wanted
            out[hit] = self.values[pos[hit]]
        return out

    def images(self, batch: ImageBatch) -> list[torch.Tensor]:
        return []

    def fill(self, out: Batch, batch: ImageBatch, features: Sequence[torch.Tensor]) -> None:
        out.targets = torch.as_tensor(self.lookup(batch.keys), device=out.embeddings.device)


class Inputs:
    """The providers of one training module (plain objects: never trained, never synchronised by DDP).

    Args:
        providers: at most one per need.

    Attributes:
        last_images: images the last :meth:`features` call forwarded through the backbone (classification
            images plus every provider's: composer branches, low-resolution copies); the trainer sums it
            into ``TrainState.images_seen``, the run's compute.
    """

    def __init__(self, providers: Iterable[Provider] = ()):
        self.last_images = 0
        self.providers = sorted(providers, key=lambda p: list(Need).index(p.need))
        if len({p.need for p in self.providers}) != len(self.providers):
            raise ValueError(f"one provider per need, got {[p.need for p in self.providers]}")

    @property
    def provided(self) -> frozenset[Need]:
        return frozenset(p.need for p in self.providers)

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """RNGs to checkpoint (the low-resolution copy's scale draws)."""
        return {name: g for provider in self.providers for name, g in provider.generators.items()}

    def features(self, backbone: nn.Module, batch: ImageBatch) -> Batch:
        """One backbone pass over the classification images and every provider's images -> the Batch."""
        groups = [provider.images(batch) for provider in self.providers]
        images = [batch.images, *chain.from_iterable(groups)]
        self.last_images = sum(len(t) for t in images)
        features = backbone(torch.cat(images)).float().split([len(t) for t in images])
        out, start = Batch(features[0], batch.labels), 1
        for provider, group in zip(self.providers, groups):
            provider.fill(out, batch, features[start:start + len(group)])
            start += len(group)
        return out


@dataclass(frozen=True)
class InputContext:
    """What building a provider may depend on.

    Attributes:
        objective: the objective section (teacher, low-resolution scales, target column).
        device: the training device (the teacher is loaded onto it).
        seed: seeds the low-resolution copy's draws (differs per rank).
        run: the mining run folder (``data.run``) holding the per-sample targets; None: none given.
    """

    objective: ObjectiveConfig
    device: torch.device
    seed: int
    run: str | os.PathLike | None = None


def _branches(ctx: InputContext) -> Provider:
    return BranchFeatures()


def _lowres(ctx: InputContext) -> Provider:
    scale = (float(ctx.objective.lowres_scale[0]), float(ctx.objective.lowres_scale[1]))
    return LowResFeatures(LowResCopy(scale, torch.Generator().manual_seed(ctx.seed), ctx.objective.lowres_dist))


def _teacher(ctx: InputContext) -> Provider:
    if ctx.objective.teacher is None:
        raise ConfigError("a term needs teacher embeddings: set objective.teacher")
    return TeacherFeatures(FrozenTeacher.from_config(ctx.objective.teacher, ctx.device))


def _targets(ctx: InputContext) -> Provider:
    if ctx.run is None:
        raise ConfigError("a term needs per-sample targets: set data.run (a mining run folder)")
    return RunTargets.from_run(ctx.run, ctx.objective.target_column)


#: Need -> ``provider(context)``.
PROVIDERS: dict[Need, Callable[[InputContext], Provider]] = {
    Need.BRANCHES: _branches,
    Need.LOWRES: _lowres,
    Need.TEACHER: _teacher,
    Need.TARGETS: _targets,
}


def build_inputs(cfg: ObjectiveConfig, needs: Iterable[Need], *, device: torch.device | str = "cpu",
                 seed: int = 0, run: str | os.PathLike | None = None) -> Inputs:
    """The providers of ``needs`` (an objective's :attr:`~fr_train.objective.Objective.needs`).

    Args:
        cfg: the objective section (teacher, low-resolution scales, target column).
        device: the training device (the teacher is loaded onto it).
        seed: seeds the low-resolution copy's draws (differ per rank).
        run: the mining run holding the per-sample targets (``data.run``).
    """
    ctx, needs = InputContext(cfg, torch.device(device), seed, run), set(needs)
    return Inputs(PROVIDERS[need](ctx) for need in Need if need in needs)
