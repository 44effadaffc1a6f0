"""The training objective: a margin-softmax classification term plus weighted auxiliary losses.

A config such as ``{"head": {"name": "curricularface", "m": 0.5}, "losses": [{"name": "ddl", "weight":
1.0}, {"name": "ot", "weight": 0.1, "eps": 0.05}]}`` becomes "CurricularFace + 1.0*DDL + 0.1*OT" through
the ``HEADS`` and ``LOSSES`` registries, without new code. Every auxiliary loss reads what it needs from
one :class:`Batch` through its ``batch_loss(batch)`` method, so new losses plug in by implementing it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train import dist
from fr_train.losses import LOSSES
from fr_train.losses.functional import LossOutput

CONFIG_KEYS = frozenset({"head", "head_weight", "losses", "gather"})
HeadBuilder = Callable[..., nn.Module]


@dataclass
class Batch:
    """Everything the terms of an objective may need from one training step.

    Attributes:
        embeddings: (B, D) features fed to the classification head (and to OT/EKD as the student).
        labels: (B,) int64 class labels of ``embeddings``.
        teacher_embeddings: (B, Dt) teacher features of the same images (EKD; OT's default reference).
        reference: (R, D) easy/teacher features for OT, labelled by ``reference_labels``.
        reference_labels: (R,) labels of ``reference``.
        neg_branches: DDL single-image branches, branch 0 the teacher (easy).
        pos_a: DDL first images of the positive pairs, per branch.
        pos_b: DDL second images of the positive pairs, per branch.
    """

    embeddings: torch.Tensor
    labels: torch.Tensor
    teacher_embeddings: torch.Tensor | None = None
    reference: torch.Tensor | None = None
    reference_labels: torch.Tensor | None = None
    neg_branches: Sequence[torch.Tensor] | None = None
    pos_a: Sequence[torch.Tensor] | None = None
    pos_b: Sequence[torch.Tensor] | None = None

    def require(self, name: str, user: object) -> Any:
        """The field ``name``, or a ValueError naming the loss that needs it."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"{type(user).__name__} needs batch.{name}, which is not set")
        return value

    def gathered(self) -> Batch:
        """This batch concatenated over all ranks (identity without a process group).

        Features go through :func:`fr_train.dist.all_gather_with_grad`, whose backward hands each rank
        its own slice of the summed gradient: a loss computed identically on every rank and averaged by
        DDP keeps its nominal weight (no world-size factor). Labels and tensors without gradient are
        gathered without autograd. Every rank must pass equal shapes.
        """
        updates = {f.name: _gather(getattr(self, f.name)) for f in fields(self)}
        return replace(self, **updates)


def _gather(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return dist.all_gather_with_grad(value) if value.requires_grad else dist.all_gather_nograd(value)
    return [_gather(v) for v in value]


class AuxiliaryLoss(Protocol):
    """What an auxiliary term must offer: a loss of a :class:`Batch`."""

    def batch_loss(self, batch: Batch) -> LossOutput | torch.Tensor: ...


@dataclass(frozen=True)
class ObjectiveOutput:
    """Total loss and named scalar values for logging (``ce``, each term, each term's parts)."""

    loss: torch.Tensor
    parts: dict[str, torch.Tensor]


class Objective(nn.Module):
    """``head_weight * CE(head(embeddings, labels), labels) + sum_k weight_k * term_k(batch)``.

    Args:
        head: Margin head, ``forward(embeddings, labels) -> logits``; None for no classification term.
        terms: ``(name, weight, loss)`` triples; each loss has ``batch_loss(batch)``.
        head_weight: Weight of the cross-entropy term.
        gather: Give the auxiliary terms the batch all-gathered across ranks (classification stays
            local: sharded heads handle ranks themselves).
    """

    def __init__(
        self,
        head: nn.Module | None,
        terms: Sequence[tuple[str, float, nn.Module]] = (),
        *,
        head_weight: float = 1.0,
        gather: bool = False,
    ) -> None:
        super().__init__()
        names = [name for name, _, _ in terms]
        if len(set(names)) != len(names) or "ce" in names:
            raise ValueError(f"auxiliary term names must be unique and not 'ce', got {names}")
        self.head = head
        self.head_weight = head_weight
        self.gather = gather
        self.terms = nn.ModuleDict({name: loss for name, _, loss in terms})
        self.weights = {name: float(weight) for name, weight, _ in terms}

    def forward(self, batch: Batch) -> ObjectiveOutput:
        """Weighted total and per-term values (unweighted) of one batch."""
        total = batch.embeddings.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        if self.head is not None:
            ce = F.cross_entropy(self.head(batch.embeddings, batch.labels), batch.labels)
            total = total + self.head_weight * ce
            parts["ce"] = ce.detach()
        aux_batch = batch.gathered() if self.gather and self.terms else batch
        for name, loss in self.terms.items():
            value, sub_parts = _as_output(loss.batch_loss(aux_batch))
            total = total + self.weights[name] * value
            parts[name] = value.detach()
            parts.update({f"{name}/{key}": v.detach() for key, v in sub_parts.items()})
        parts["total"] = total.detach()
        return ObjectiveOutput(total, parts)

    def extra_repr(self) -> str:
        return f"head_weight={self.head_weight}, weights={self.weights}, gather={self.gather}"


def _as_output(result: LossOutput | torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if isinstance(result, LossOutput):
        return result.loss, result.parts
    return result, {}


def build_objective(
    config: Mapping[str, Any],
    *,
    embedding_size: int,
    num_classes: int,
    head_builder: HeadBuilder | None = None,
    losses: Mapping[str, Callable[..., nn.Module]] = LOSSES,
) -> Objective:
    """Objective from a config mapping (see the module docstring), names resolved by registries.

    Args:
        config: ``head`` (mapping with ``name`` and head keyword arguments, or None), optional
            ``head_weight``, ``losses`` (list of mappings with ``name``, optional ``weight`` (default 1)
            and loss keyword arguments), optional ``gather`` (bool).
        embedding_size: Feature dimension, passed to the head builder.
        num_classes: Number of classes, passed to the head builder.
        head_builder: ``build(name, embedding_size, num_classes, **kw)``; default
            :func:`fr_train.heads.build_head`.
        losses: Loss registry (default :data:`fr_train.losses.LOSSES`).

    Raises:
        ConfigError: Unknown key or name, or arguments a head/loss does not accept.
    """
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ConfigError(f"objective config: unknown keys {sorted(unknown)} (known: {sorted(CONFIG_KEYS)})")
    head_cfg = config.get("head")
    head = None if head_cfg is None else _build_head(head_cfg, embedding_size, num_classes, head_builder)
    terms = [_build_term(i, entry, losses) for i, entry in enumerate(config.get("losses") or ())]
    return Objective(
        head,
        terms,
        head_weight=float(config.get("head_weight", 1.0)),
        gather=bool(config.get("gather", False)),
    )


def _build_head(
    cfg: Mapping[str, Any], embedding_size: int, num_classes: int, builder: HeadBuilder | None
) -> nn.Module:
    kwargs = dict(cfg)
    name = kwargs.pop("name", None)
    if name is None:
        raise ConfigError("objective config: head needs a 'name'")
    if builder is None:
        from fr_train.heads import build_head as builder  # deferred: heads are optional for aux-only use
    try:
        return builder(name, embedding_size, num_classes, **kwargs)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"objective config: head {name!r}: {exc}") from exc


def _build_term(
    index: int, entry: Mapping[str, Any], registry: Mapping[str, Callable[..., nn.Module]]
) -> tuple[str, float, nn.Module]:
    kwargs = dict(entry)
    name = kwargs.pop("name", None)
    weight = float(kwargs.pop("weight", 1.0))
    if name not in registry:
        raise ConfigError(
            f"objective config: losses[{index}]: unknown loss {name!r} (known: {sorted(registry)})"
        )
    try:
        return name, weight, registry[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"objective config: losses[{index}] ({name}): {exc}") from exc
