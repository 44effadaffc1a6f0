"""The training objective: a classification slot plus weighted auxiliary terms.

``head_weight * CE + sum_k weight_k * term_k(batch)``. The classification slot holds a local margin head
(:data:`fr_train.objective.heads.HEADS`; cross-entropy of its logits) or a
:class:`fr_train.objective.partial_fc.PartialFC` around one (its class centres sharded over ranks; it computes
the cross-entropy itself). Each term is a :class:`~fr_train.objective.terms.Term`: a loss with
``batch_loss(batch)`` that sees the :class:`~fr_train.objective.batch.Batch` restricted to the needs it
declared.

State: the local head and the terms' buffers are equal on every rank (``objective.pt``); Partial FC's
shard is not (``classifier.pt``, one per rank): :meth:`Objective.replicated_state_dict` and
:meth:`Objective.load_state_dicts` keep the two apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fr_train.objective.batch import Batch, Need
from fr_train.objective.losses.functional import LossOutput
from fr_train.objective.partial_fc import PartialFC
from fr_train.objective.terms import Term

__all__ = ["AuxiliaryLoss", "Objective", "ObjectiveOutput", "SHARDED"]

#: Attribute (and state-dict prefix) of the sharded classification slot.
SHARDED = "classifier"


class AuxiliaryLoss(Protocol):
    """What the loss of a term must offer: a loss of a :class:`Batch`."""

    def batch_loss(self, batch: Batch) -> LossOutput | torch.Tensor: ...


@dataclass(frozen=True)
class ObjectiveOutput:
    """Total loss and named scalar values for logging (``ce``, each term, each term's parts)."""

    loss: torch.Tensor
    parts: dict[str, torch.Tensor]


class Objective(nn.Module):
    """``head_weight * CE + sum_k weight_k * term_k(batch)``.

    Args:
        classification: a margin head (``forward(embeddings, labels) -> logits``), a
            :class:`~fr_train.objective.partial_fc.PartialFC` (``forward(embeddings, labels) -> loss``), or
            None for no classification term. Kept as ``head`` or as ``classifier`` (sharded) respectively.
        terms: the auxiliary terms (unique names, not ``ce``).
        head_weight: weight of the cross-entropy term.
        gather: give the auxiliary terms the batch all-gathered across ranks (classification stays
            local: Partial FC handles ranks itself).
    """

    def __init__(self, classification: nn.Module | None = None, terms: Sequence[Term] = (), *,
                 head_weight: float = 1.0, gather: bool = False) -> None:
        super().__init__()
        names = [term.name for term in terms]
        if len(set(names)) != len(names) or "ce" in names:
            raise ValueError(f"auxiliary term names must be unique and not 'ce', got {names}")
        sharded = isinstance(classification, PartialFC)
        self.head = None if sharded else classification
        self.classifier = classification if sharded else None
        self.head_weight = head_weight
        self.gather = gather
        self.terms = nn.ModuleDict({term.name: term.loss for term in terms})
        self.weights = {term.name: float(term.weight) for term in terms}
        self.term_needs = {term.name: frozenset(term.needs) for term in terms}

    @property
    def needs(self) -> frozenset[Need]:
        """Everything the terms need: what the trainer must provide."""
        return frozenset().union(*self.term_needs.values())

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """RNGs to checkpoint (Partial FC's negative sampling)."""
        sampler = getattr(self.classifier, "generator", None)
        return {"partial_fc": sampler} if sampler is not None else {}

    def classification_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        """The cross-entropy of the classification slot, or None without one."""
        if self.classifier is not None:
            return self.classifier(embeddings, labels)
        if self.head is not None:
            return F.cross_entropy(self.head(embeddings, labels), labels)
        return None

    def forward(self, batch: Batch) -> ObjectiveOutput:
        """Weighted total and per-term values (unweighted) of one batch."""
        total = batch.embeddings.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        ce = self.classification_loss(batch.embeddings, batch.labels)
        if ce is not None:
            total = total + self.head_weight * ce
            parts["ce"] = ce.detach()
        aux_batch = batch.gathered() if self.gather and self.terms else batch
        for name, loss in self.terms.items():
            value, sub_parts = _as_output(loss.batch_loss(aux_batch.restricted(self.term_needs[name])))
            total = total + self.weights[name] * value
            parts[name] = value.detach()
            parts.update({f"{name}/{key}": v.detach() for key, v in sub_parts.items()})
        parts["total"] = total.detach()
        return ObjectiveOutput(total, parts)

    # ------------------------------------------------------------------------------------------ state
    def unsynchronised_names(self) -> list[str]:
        """Parameters and buffers DDP must leave alone: the sharded classifier (different on every rank)
        and buffers outside the state (constants such as a frozen teacher classifier)."""
        state = set(self.state_dict())
        sharded = [name for name, _ in self.named_parameters() if name.startswith(f"{SHARDED}.")]
        return sharded + [name for name, _ in self.named_buffers()
                          if name.startswith(f"{SHARDED}.") or name not in state]

    def replicated_state_dict(self) -> dict[str, torch.Tensor]:
        """The state that is equal on every rank: everything but the sharded classifier."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(f"{SHARDED}.")}

    def load_state_dicts(self, replicated: dict[str, torch.Tensor],
                         sharded: dict[str, torch.Tensor] | None = None) -> None:
        """Load :meth:`replicated_state_dict` and (with Partial FC) this rank's classifier state, strictly."""
        prefixed = {f"{SHARDED}.{k}": v for k, v in (sharded or {}).items()}
        self.load_state_dict({**replicated, **prefixed})

    def extra_repr(self) -> str:
        return f"head_weight={self.head_weight}, weights={self.weights}, gather={self.gather}"


def _as_output(result: LossOutput | torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if isinstance(result, LossOutput):
        return result.loss, result.parts
    return result, {}
