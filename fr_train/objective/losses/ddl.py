"""Distribution Distillation Loss (DDL), Huang et al., ECCV 2020, https://arxiv.org/abs/2002.03662.

The similarity distributions of hard samples (students) are pulled towards those of easy samples (the
teacher, branch 0) by a KL term on soft histograms, and an order term pushes every negative distribution
below every positive one. Numerically this follows the TFace reference implementation
(``torchkit/loss/ddl.py``), see ``docs/losses.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fr_train.objective.losses.functional import (
    LossOutput,
    kl_divergence,
    positive_pair_cosines,
    soft_histogram,
    upper_triangle_max,
)

POSITIVE_THRESHOLD = 0.0
"""Positive pairs with cosine <= this are dropped (the reference always uses 0)."""


def _kl_to_teacher(sims: Sequence[torch.Tensor], num_bins: int, sigma: float, detach: bool) -> torch.Tensor:
    """``sum_{k>=1} KL(hist(sims[0]) || hist(sims[k]))`` over the non-empty students (0 without a teacher)."""
    total = sims[0].new_zeros(())
    if sims[0].numel() == 0:
        return total
    teacher = soft_histogram(sims[0], num_bins, sigma)
    if detach:
        teacher = teacher.detach()
    for student in sims[1:]:
        if student.numel():
            total = total + kl_divergence(teacher, soft_histogram(student, num_bins, sigma))
    return total


def _order_term(pos_sims: Sequence[torch.Tensor], neg_sims: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_{i,j} mean(neg_i) - mean(pos_j)`` over every (negative branch, non-empty positive branch) pair."""
    pos_sims = [s for s in pos_sims if s.numel()]
    neg_means = torch.stack([s.mean() for s in neg_sims])
    if not pos_sims:
        return neg_means.sum() * 0.0  # nothing to order against (still attached to the graph)
    pos_means = torch.stack([s.mean() for s in pos_sims])
    return len(pos_sims) * neg_means.sum() - len(neg_sims) * pos_means.sum()


def _check_branches(pos_sims: Sequence[torch.Tensor], neg_sims: Sequence[torch.Tensor]) -> None:
    if len(pos_sims) != len(neg_sims) or not pos_sims:
        raise ValueError(
            f"DDL needs the same non-zero number of positive and negative branches, "
            f"got {len(pos_sims)} and {len(neg_sims)}"
        )
    for k, sims in enumerate(neg_sims):
        if sims.numel() == 0:
            raise ValueError(f"DDL negative branch {k} has no similarities")


def ddl_loss(
    pos_sims: Sequence[torch.Tensor],
    neg_sims: Sequence[torch.Tensor],
    *,
    num_bins: int = 1000,
    sigma: float = 0.1,
    pos_kl_weight: float = 0.1,
    neg_kl_weight: float = 0.02,
    order_weight: float = 0.5,
    detach_teacher: bool = False,
) -> LossOutput:
    """DDL on similarity vectors; branch 0 of each list is the teacher (easy samples).

    ``loss = pos_kl_weight * sum_k KL(P+_0 || P+_k) + neg_kl_weight * sum_k KL(P-_0 || P-_k)
    + order_weight * sum_{i,j} (mean(neg_i) - mean(pos_j))`` with Gaussian soft histograms on
    ``num_bins`` nodes in [0, 1) and KL epsilon 1e-9.

    Gradient: by default (as in the reference) the teacher histograms are *not* detached, so the KL terms
    also move the teacher branch. ``detach_teacher=True`` detaches the teacher histograms inside the KL
    terms only; the order term always acts on every branch (it is a margin, not a distillation target).

    Args:
        pos_sims: Per branch, 1-D positive-pair similarities. A branch may be empty (every pair of a
            weak backbone's hard branch at cosine <= 0, dropped by the threshold): it then takes no part
            in the positive KL (no positive KL at all when the teacher's is empty) nor in the order term,
            and is counted in the part ``empty_pos``; the reference divides by zero there instead.
        neg_sims: Per branch, 1-D negative similarities (non-empty); same number of branches.
        num_bins: Histogram nodes ``r / num_bins``, r = 0 ... num_bins - 1.
        sigma: Gaussian kernel width.
        pos_kl_weight: Weight of the positive KL sum (lambda_1).
        neg_kl_weight: Weight of the negative KL sum (lambda_2).
        order_weight: Weight of the order term (lambda_3).
        detach_teacher: Stop KL gradients into branch 0.

    Returns:
        ``LossOutput`` with detached parts ``pos_kl``, ``neg_kl``, ``order`` (unweighted), ``empty_pos``
        (empty positive branches) and details ``pos_sims``/``neg_sims`` (detached, for histogram logging).
    """
    _check_branches(pos_sims, neg_sims)
    pos_kl = _kl_to_teacher(pos_sims, num_bins, sigma, detach_teacher)
    neg_kl = _kl_to_teacher(neg_sims, num_bins, sigma, detach_teacher)
    order = _order_term(pos_sims, neg_sims)
    loss = pos_kl_weight * pos_kl + neg_kl_weight * neg_kl + order_weight * order
    details = {"pos_sims": [s.detach() for s in pos_sims], "neg_sims": [s.detach() for s in neg_sims]}
    empty = order.new_tensor(float(sum(s.numel() == 0 for s in pos_sims)))
    parts = {"pos_kl": pos_kl.detach(), "neg_kl": neg_kl.detach(), "order": order.detach(), "empty_pos": empty}
    return LossOutput(loss, parts, details)


class DistributionDistillationLoss(nn.Module):
    """Distribution Distillation Loss (https://arxiv.org/abs/2002.03662), reference-exact.

    Call with lists of branches, branch 0 the teacher (easy samples), the others students (hard samples):
    ``loss(neg_feats=[easy, hard], pos_a=[easy_a, hard_a], pos_b=[easy_b, hard_b])``. Features are raw
    embeddings (normalised inside). The negatives of a branch are the per-row maxima over the strict upper
    triangle of its cosine matrix (the batch must hold one image per identity; values are clipped at 0 and
    the last row is 0, as in the reference); its positives are the pair cosines above 0.
    See :func:`ddl_loss` for the formula and the teacher-gradient convention.

    Args:
        num_bins: Histogram nodes (1000 -> 0.000 ... 0.999).
        sigma: Gaussian kernel width.
        pos_kl_weight: lambda_1.
        neg_kl_weight: lambda_2.
        order_weight: lambda_3.
        detach_teacher: Stop KL gradients into the teacher branch (default False = reference).
    """

    def __init__(
        self,
        num_bins: int = 1000,
        sigma: float = 0.1,
        pos_kl_weight: float = 0.1,
        neg_kl_weight: float = 0.02,
        order_weight: float = 0.5,
        detach_teacher: bool = False,
    ) -> None:
        super().__init__()
        if num_bins < 1 or sigma <= 0:
            raise ValueError(f"need num_bins >= 1 and sigma > 0, got {num_bins}, {sigma}")
        self.num_bins = num_bins
        self.sigma = sigma
        self.pos_kl_weight = pos_kl_weight
        self.neg_kl_weight = neg_kl_weight
        self.order_weight = order_weight
        self.detach_teacher = detach_teacher

    def forward(
        self,
        neg_feats: Sequence[torch.Tensor],
        pos_a: Sequence[torch.Tensor],
        pos_b: Sequence[torch.Tensor],
    ) -> LossOutput:
        """DDL of feature branches (lists of equal length, branch 0 the teacher)."""
        if not len(neg_feats) == len(pos_a) == len(pos_b):
            raise ValueError(
                f"DDL branch lists differ in length: neg {len(neg_feats)}, "
                f"pos_a {len(pos_a)}, pos_b {len(pos_b)}"
            )
        neg_sims = [upper_triangle_max(x) for x in neg_feats]
        pos_sims = [positive_pair_cosines(a, b, POSITIVE_THRESHOLD) for a, b in zip(pos_a, pos_b)]
        return ddl_loss(
            pos_sims,
            neg_sims,
            num_bins=self.num_bins,
            sigma=self.sigma,
            pos_kl_weight=self.pos_kl_weight,
            neg_kl_weight=self.neg_kl_weight,
            order_weight=self.order_weight,
            detach_teacher=self.detach_teacher,
        )

    def batch_loss(self, batch: Any) -> LossOutput:
        """DDL of a :class:`fr_train.objective.Batch` (uses ``neg_branches``, ``pos_a``, ``pos_b``)."""
        need = batch.require
        return self(need("neg_branches", self), need("pos_a", self), need("pos_b", self))

    def extra_repr(self) -> str:
        return (
            f"num_bins={self.num_bins}, sigma={self.sigma}, pos_kl_weight={self.pos_kl_weight}, "
            f"neg_kl_weight={self.neg_kl_weight}, order_weight={self.order_weight}, "
            f"detach_teacher={self.detach_teacher}"
        )
