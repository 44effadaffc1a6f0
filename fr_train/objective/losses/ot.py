"""Hard-sample-guided optimal-transport loss after OTFace (Qian et al.), https://arxiv.org/abs/2203.14461.

Only the OTFace abstract is public (``docs/losses.md``): a triplet scheme marks hard sample groups in
the mini-batch and an optimal-transport distance between feature distributions is added to a margin
softmax. Everything concrete below is this project's assumption, kept configurable:

* hard anchors: an anchor is hard when its hardest negative (largest cosine to any batch or reference
  feature of another identity) comes within ``margin`` of its hardest positive (smallest cosine to a
  reference feature of its own identity), i.e. ``max_neg + margin > min_pos``; anchors without a
  reference feature of their identity are never hard;
* groups: the hard anchors of one identity form the source distribution, the reference (easy or teacher)
  features of that identity the target; both uniform;
* distance: entropic OT by log-domain Sinkhorn with cost ``1 - cos``; the value is the transport cost
  ``<P, C>`` of the entropic plan P, without the entropy term (the definition of POT's ``ot.sinkhorn2``);
* loss: the mean distance over groups; reference features are detached by default (they are targets).

The reference features must live in the same embedding space as the embeddings (the same network's easy
branch, or a teacher with the same output space).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fr_train.objective.losses.functional import (
    LossOutput,
    cosine_matrix,
    log_sinkhorn_plan,
    transport_cost,
    uniform_log_weights,
)


def sinkhorn_cost(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float = 0.05,
    num_iters: int = 50,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Entropic OT transport cost between uniform point clouds of features, cost ``1 - cos``.

    Returns ``<P, C>`` where P is the Sinkhorn plan of ``min <P, C> - eps H(P)`` with uniform marginals
    (the entropy term is *not* included: this equals POT's ``ot.sinkhorn2(a, b, C, eps)`` once converged).

    Args:
        x: (..., n, d) source features (raw; normalised inside).
        y: (..., m, d) target features.
        eps: Entropic regularisation.
        num_iters: Sinkhorn iterations (fixed, unrolled for autograd).
        x_mask: Optional (..., n) bool, False marks padding (no mass). Each problem needs one True entry.
        y_mask: Optional (..., m) bool, likewise for ``y``.

    Returns:
        (...) transport costs.
    """
    cost = 1.0 - cosine_matrix(x, y)
    x_mask = torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device) if x_mask is None else x_mask
    y_mask = torch.ones(y.shape[:-1], dtype=torch.bool, device=y.device) if y_mask is None else y_mask
    cost = cost * (x_mask.unsqueeze(-1) & y_mask.unsqueeze(-2))
    plan = log_sinkhorn_plan(
        cost, uniform_log_weights(x_mask, cost.dtype), uniform_log_weights(y_mask, cost.dtype), eps, num_iters
    )
    return transport_cost(cost, plan)


@torch.no_grad()
def hard_anchor_mask(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    reference: torch.Tensor,
    reference_labels: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """Triplet-scheme hard anchors: ``max_neg + margin > min_pos`` (see the module docstring).

    Returns:
        (B,) bool mask over the rows of ``embeddings``.
    """
    to_ref = cosine_matrix(embeddings, reference)
    to_batch = cosine_matrix(embeddings)
    same_ref = labels.unsqueeze(1) == reference_labels.unsqueeze(0)
    diff_batch = labels.unsqueeze(1) != labels.unsqueeze(0)
    inf = torch.tensor(float("inf"), dtype=to_ref.dtype, device=to_ref.device)
    min_pos = torch.where(same_ref, to_ref, inf).amin(dim=1)
    max_neg = torch.maximum(
        torch.where(same_ref, -inf, to_ref).amax(dim=1), torch.where(diff_batch, to_batch, -inf).amax(dim=1)
    )
    return max_neg + margin > min_pos


def pad_groups(
    features: torch.Tensor, group_ids: torch.Tensor, num_groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter rows into zero-padded per-group blocks, differentiably and without a Python loop.

    Args:
        features: (n, d) rows.
        group_ids: (n,) int64 group of each row in [0, num_groups).
        num_groups: G.

    Returns:
        ``(blocks (G, n_max, d), mask (G, n_max))`` with rows of a group in their original order.
    """
    order = torch.argsort(group_ids, stable=True)
    sorted_ids = group_ids[order]
    counts = torch.bincount(group_ids, minlength=num_groups)
    starts = torch.cumsum(counts, dim=0) - counts
    slots = torch.arange(len(order), device=features.device) - starts[sorted_ids]
    n_max = int(counts.max()) if len(order) else 0
    blocks = features.new_zeros(num_groups, n_max, features.shape[1])
    blocks = blocks.index_put((sorted_ids, slots), features[order])
    mask = torch.zeros(num_groups, n_max, dtype=torch.bool, device=features.device)
    mask[sorted_ids, slots] = True
    return blocks, mask


class OTLoss(nn.Module):
    """Hard-sample OT loss after OTFace (https://arxiv.org/abs/2203.14461); batched Sinkhorn over groups.

    ``loss(embeddings, labels, reference, reference_labels=None)``: ``reference`` holds the easy/teacher
    features; without ``reference_labels`` it must be row-aligned with ``embeddings`` (teacher embeddings
    of the same images). All groups are solved as one padded batch of OT problems. The defaults
    (margin 0.1, eps 0.05, 50 iterations) are assumptions: OTFace's values are unknown.

    Args:
        margin: Triplet-scheme margin for hard anchors.
        eps: Entropic regularisation of Sinkhorn.
        num_iters: Sinkhorn iterations.
        detach_reference: Treat reference features as constants (default True).
    """

    def __init__(
        self, margin: float = 0.1, eps: float = 0.05, num_iters: int = 50, detach_reference: bool = True
    ) -> None:
        super().__init__()
        self.margin = margin
        self.eps = eps
        self.num_iters = num_iters
        self.detach_reference = detach_reference

    def sinkhorn_cost(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:func:`sinkhorn_cost` with this loss's ``eps`` and ``num_iters`` (uniform weights, 1 - cos)."""
        return sinkhorn_cost(x, y, eps=self.eps, num_iters=self.num_iters)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        reference: torch.Tensor,
        reference_labels: torch.Tensor | None = None,
    ) -> LossOutput:
        """Mean OT distance between each identity's hard anchors and its reference features.

        Returns:
            ``LossOutput`` with parts ``ot`` (= loss), ``num_hard`` and ``num_groups``; the loss is an
            exact zero (still attached to the graph) when no anchor is hard.
        """
        reference_labels = _reference_labels(embeddings, labels, reference, reference_labels)
        if self.detach_reference:
            reference = reference.detach()
        hard = hard_anchor_mask(embeddings, labels, reference, reference_labels, self.margin)
        groups = torch.unique(labels[hard])
        if groups.numel() == 0:
            zero = embeddings.new_zeros(()) + embeddings.sum() * 0.0  # +0.0, still attached to the graph
            none = zero.detach()
            return LossOutput(zero, {"ot": none, "num_hard": none, "num_groups": none})
        src, src_mask = _padded_group_features(embeddings[hard], labels[hard], groups)
        dst, dst_mask = _padded_group_features(reference, reference_labels, groups)
        costs = sinkhorn_cost(
            src, dst, eps=self.eps, num_iters=self.num_iters, x_mask=src_mask, y_mask=dst_mask
        )
        loss = costs.mean()
        num_hard = hard.sum().to(loss.dtype)
        parts = {"ot": loss.detach(), "num_hard": num_hard, "num_groups": num_hard.new_tensor(len(groups))}
        return LossOutput(loss, parts)

    def batch_loss(self, batch: Any) -> LossOutput:
        """OT of a :class:`fr_train.objective.Batch`: ``embeddings``/``labels`` against ``reference``
        (with ``reference_labels``) or, if absent, the row-aligned ``teacher_embeddings``."""
        if batch.reference is not None:
            ref_labels = batch.require("reference_labels", self)
            return self(batch.embeddings, batch.labels, batch.reference, ref_labels)
        return self(batch.embeddings, batch.labels, batch.require("teacher_embeddings", self))

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, eps={self.eps}, num_iters={self.num_iters}, "
            f"detach_reference={self.detach_reference}"
        )


def _padded_group_features(
    features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised rows whose label is in the sorted ``groups``, padded per group (see :func:`pad_groups`)."""
    pos = torch.searchsorted(groups, labels).clamp(max=len(groups) - 1)
    member = groups[pos] == labels
    return pad_groups(F.normalize(features[member], dim=1), pos[member], len(groups))


def _reference_labels(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    reference: torch.Tensor,
    reference_labels: torch.Tensor | None,
) -> torch.Tensor:
    """``reference_labels`` checked, or ``labels`` when the reference is row-aligned with the embeddings."""
    if reference_labels is not None:
        if reference_labels.shape[0] != reference.shape[0]:
            raise ValueError(
                f"reference has {reference.shape[0]} rows but {reference_labels.shape[0]} labels"
            )
        return reference_labels
    if reference.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"reference ({reference.shape[0]} rows) must be row-aligned with embeddings "
            f"({embeddings.shape[0]} rows) when reference_labels is not given"
        )
    return labels
