"""What the terms of an objective read in one step: a :class:`Batch` of features, and the :class:`Need` s
that say which of its optional fields a term reads.

The classification embeddings and labels are always there. Everything else is provided by the trainer
only when a term declares the :class:`Need` behind it (:mod:`fr_train.objective.inputs`), and each term
sees only the fields it declared (:meth:`Batch.restricted`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any

import torch

from fr_train import dist

__all__ = ["Need", "NEED_FIELDS", "Batch"]


class Need(Enum):
    """An input a term may need beyond the classification embeddings (value: its description).

    The order is the order of the backbone pass: classification images, branch images, low-resolution copy.
    """

    BRANCHES = "composer branches"
    LOWRES = "a low-resolution copy of the batch"
    TEACHER = "teacher embeddings"


#: The :class:`Batch` fields each need fills.
NEED_FIELDS: dict[Need, tuple[str, ...]] = {
    Need.BRANCHES: ("neg_branches", "pos_a", "pos_b", "reference", "reference_labels"),
    Need.LOWRES: ("lowres_embeddings",),
    Need.TEACHER: ("teacher_embeddings",),
}


@dataclass
class Batch:
    """Everything the terms of an objective may read from one training step.

    Attributes:
        embeddings: (B, D) features fed to the classification head (and to OT/EKD as the student).
        labels: (B,) int64 class labels of ``embeddings``.
        teacher_embeddings: (B, Dt) teacher features of the same images (:attr:`Need.TEACHER`).
        reference: (R, D) easy-branch features for OT, labelled by ``reference_labels``
            (:attr:`Need.BRANCHES`).
        reference_labels: (R,) labels of ``reference``.
        neg_branches: DDL single-image branches, branch 0 the teacher (easy).
        pos_a: DDL first images of the positive pairs, per branch.
        pos_b: DDL second images of the positive pairs, per branch.
        lowres_embeddings: (B, D) features of a low-resolution copy of the images (:attr:`Need.LOWRES`).
    """

    embeddings: torch.Tensor
    labels: torch.Tensor
    teacher_embeddings: torch.Tensor | None = None
    reference: torch.Tensor | None = None
    reference_labels: torch.Tensor | None = None
    neg_branches: Sequence[torch.Tensor] | None = None
    pos_a: Sequence[torch.Tensor] | None = None
    pos_b: Sequence[torch.Tensor] | None = None
    lowres_embeddings: torch.Tensor | None = None

    def require(self, name: str, user: object) -> Any:
        """The field ``name``, or a ValueError naming the loss that needs it."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"{type(user).__name__} needs batch.{name}, which is not set")
        return value

    def restricted(self, needs: Iterable[Need]) -> Batch:
        """This batch with the fields of every need not in ``needs`` cleared (what one term may read)."""
        keep = set(needs)
        cleared = {name: None for need, names in NEED_FIELDS.items() if need not in keep for name in names}
        return replace(self, **cleared)

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
