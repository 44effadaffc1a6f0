"""Evaluation-oriented knowledge distillation (EKD), CVPR 2022, https://arxiv.org/abs/2206.02325.

The student is taught to rank its critical pairs against FPR-level thresholds the way the teacher ranks
them against its own thresholds. Follows the TFace reference (``tasks/ekd/distillation/ekd.py``) as
summarised in ``docs/losses.md``. Where the reference leaves a point open, the choice is:

1. Running thresholds are updated only in training mode (like BatchNorm statistics); in eval mode the
   stored thresholds are used unchanged. The reference module is only ever called in training mode.
2. A batch without positive pairs contributes 0 for the positive term; without negative pairs it leaves
   the thresholds unchanged and contributes 0 for the negative term (the reference would produce NaN).
3. With fewer than ``top_k`` negatives all negatives are used; ties in the student top-k are broken by
   ``torch.topk``'s order.
4. Teacher thresholds come from all of the teacher's negative pairs (not only the top-k ones).
5. The loss sees whatever batch it is given; under DDP pass all-gathered features (the objective does
   this with :func:`fr_train.dist.all_gather_with_grad`), not features scaled by the world size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fr_train.objective.losses.functional import LossOutput, cosine_matrix

DEFAULT_FPRS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
SIGMOID_CLAMP = 50.0


def fpr_thresholds(neg_sims: torch.Tensor, divisors: torch.Tensor) -> torch.Tensor:
    """Similarity thresholds at FPR ``1/divisor``: ``sorted_desc[len // divisor]`` for each divisor.

    Args:
        neg_sims: (P,) negative-pair similarities, P >= 1.
        divisors: (K,) int64, e.g. 10, 100, ... (index 0, the hardest negative, when P < divisor).
    """
    ordered = torch.sort(neg_sims, descending=True).values
    return ordered[torch.div(len(ordered), divisors, rounding_mode="floor")]


def soft_rank(sims: torch.Tensor, thresholds: torch.Tensor, temperature: float) -> torch.Tensor:
    """``R(s) = sum_k sigmoid(clamp((s - tau_k) / T, -50, 50))``: a smooth count of thresholds exceeded."""
    z = ((sims.unsqueeze(-1) - thresholds) / temperature).clamp(-SIGMOID_CLAMP, SIGMOID_CLAMP)
    return torch.sigmoid(z).sum(dim=-1)


def _pair_sims(emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper-triangle (i<j) cosines and their same-label mask."""
    i, j = torch.triu_indices(len(emb), len(emb), offset=1, device=emb.device)
    return cosine_matrix(emb)[i, j], labels[i] == labels[j]


class EKDLoss(nn.Module):
    """Evaluation-oriented KD loss (https://arxiv.org/abs/2206.02325).

    ``loss(student_emb (N, Ds), teacher_emb (N, Dt), labels (N,))``: pairs i<j of the batch, positives
    same label. Thresholds at each FPR level are read from each model's sorted negative similarities and
    smoothed by an EMA ``tau <- m * tau_batch + (1 - m) * tau`` (buffers start at 0, updated before use).
    Loss = ``pos_weight * MSE(R_S, R_T)`` over all positive pairs + ``neg_weight * MSE(R_S, R_T)`` over the
    ``top_k`` negatives hardest for the student. The teacher receives no gradient. See the module
    docstring for the points the reference leaves open.

    Args:
        fprs: FPR levels of the thresholds (1e-1 ... 1e-6).
        momentum: EMA weight of the current batch's thresholds.
        temperature: Soft-rank sigmoid temperature.
        top_k: Number of hardest negatives (by student similarity) used.
        pos_weight: Weight of the positive-pair term.
        neg_weight: Weight of the negative-pair term.
    """

    student_thresholds: torch.Tensor
    teacher_thresholds: torch.Tensor

    def __init__(
        self,
        fprs: Sequence[float] = DEFAULT_FPRS,
        momentum: float = 0.01,
        temperature: float = 0.01,
        top_k: int = 2000,
        pos_weight: float = 0.02,
        neg_weight: float = 0.01,
    ) -> None:
        super().__init__()
        if not fprs or any(not 0 < f <= 1 for f in fprs):
            raise ValueError(f"fprs must be non-empty values in (0, 1], got {fprs}")
        self.momentum = momentum
        self.temperature = temperature
        self.top_k = top_k
        self.pos_weight = pos_weight
        self.neg_weight = neg_weight
        self.register_buffer("divisors", torch.tensor([round(1.0 / f) for f in fprs]), persistent=False)
        self.register_buffer("student_thresholds", torch.zeros(len(fprs)))
        self.register_buffer("teacher_thresholds", torch.zeros(len(fprs)))

    def forward(
        self, student_emb: torch.Tensor, teacher_emb: torch.Tensor, labels: torch.Tensor
    ) -> LossOutput:
        """EKD loss of one (possibly all-gathered) batch.

        Returns:
            ``LossOutput`` with parts ``pos`` and ``neg`` (unweighted MSEs) and details holding the
            current thresholds.
        """
        if not len(student_emb) == len(teacher_emb) == len(labels):
            raise ValueError(
                f"EKD inputs differ in length: student {len(student_emb)}, teacher {len(teacher_emb)}, "
                f"labels {len(labels)}"
            )
        s_sims, positive = _pair_sims(student_emb, labels)
        with torch.no_grad():
            t_sims, _ = _pair_sims(teacher_emb.detach(), labels)
        if self.training:
            self._update_thresholds(s_sims[~positive].detach(), t_sims[~positive])
        pos = self._rank_mse(s_sims[positive], t_sims[positive])
        s_neg, t_neg = s_sims[~positive], t_sims[~positive]
        top = torch.topk(s_neg.detach(), min(self.top_k, len(s_neg))).indices
        neg = self._rank_mse(s_neg[top], t_neg[top])
        loss = self.pos_weight * pos + self.neg_weight * neg
        details = {"student_thresholds": self.student_thresholds.clone(),
                   "teacher_thresholds": self.teacher_thresholds.clone()}
        return LossOutput(loss, {"pos": pos.detach(), "neg": neg.detach()}, details)

    def _rank_mse(self, s_sims: torch.Tensor, t_sims: torch.Tensor) -> torch.Tensor:
        """MSE between student and teacher soft ranks (each against its own thresholds); 0 if empty."""
        if s_sims.numel() == 0:
            return s_sims.new_zeros(()) + s_sims.sum() * 0.0
        s_rank = soft_rank(s_sims, self.student_thresholds.to(s_sims.dtype), self.temperature)
        t_rank = soft_rank(t_sims, self.teacher_thresholds.to(t_sims.dtype), self.temperature)
        return F.mse_loss(s_rank, t_rank)

    @torch.no_grad()
    def _update_thresholds(self, s_neg: torch.Tensor, t_neg: torch.Tensor) -> None:
        if s_neg.numel() == 0:
            return
        m = self.momentum
        s_tau = fpr_thresholds(s_neg, self.divisors).to(self.student_thresholds.dtype)
        t_tau = fpr_thresholds(t_neg, self.divisors).to(self.teacher_thresholds.dtype)
        self.student_thresholds.mul_(1.0 - m).add_(m * s_tau)
        self.teacher_thresholds.mul_(1.0 - m).add_(m * t_tau)

    def batch_loss(self, batch: Any) -> LossOutput:
        """EKD of a :class:`fr_train.objective.Batch` (``embeddings``, ``teacher_embeddings``, ``labels``)."""
        return self(batch.embeddings, batch.require("teacher_embeddings", self), batch.labels)

    def extra_repr(self) -> str:
        return (
            f"divisors={self.divisors.tolist()}, momentum={self.momentum}, temperature={self.temperature}, "
            f"top_k={self.top_k}, pos_weight={self.pos_weight}, neg_weight={self.neg_weight}"
        )
