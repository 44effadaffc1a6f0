"""Margin-softmax heads: ArcFace, CosFace, CurricularFace and CIFP.

Every head owns a classifier ``weight`` of shape ``(num_classes, embedding_size)`` and maps
``forward(embeddings, labels)`` to *scaled logits*; the cross-entropy is applied outside. The margin
arithmetic lives in :meth:`MarginHead.margin`, which works on a given cosine matrix so that
:class:`fr_train.objective.partial_fc.PartialFC` can reuse it on sampled, rank-sharded class centres.

Margin calling convention (``margin(cos, labels, *, frozen_cos=None, row_sum=...)``):

- ``cos``: ``(B, C')`` cosines between normalised embeddings and the classifier columns at hand.
- ``labels``: ``(B,)`` column index of each row's target in ``cos``, or ``-1`` when the target class is
  not among these columns (it lives on another rank's shard); such rows get no target margin here.
- ``frozen_cos``: the same cosines computed with *detached* classifier weights (CIFP only).
- ``row_sum``: sums a per-row quantity over all column shards of the full cosine matrix (identity
  when ``cos`` holds every class; a differentiable all-reduce under Partial FC).

Cross-rank statistics (CurricularFace's ``t``, CIFP's unified threshold) are reduced over all ranks
whenever a process group is running, which is right both for data parallelism (different rows on each
rank, all classes) and for Partial FC (the same gathered rows, different classes on each rank).

Formulas, defaults and their sources: ``docs/losses.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train import dist

__all__ = [
    "MarginHead", "ArcFace", "CosFace", "CurricularFace", "CIFP", "HEADS", "build_head",
    "cosine_logits", "arc_target",
]

RowSum = Callable[[torch.Tensor], torch.Tensor]


def _no_shards(x: torch.Tensor) -> torch.Tensor:
    return x


def cosine_logits(embeddings: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``(B, C)`` cosines of L2-normalised ``embeddings`` ``(B, D)`` and ``weight`` rows ``(C, D)``.

    Half-precision results (under autocast) are promoted to float32 before the margin arithmetic.
    """
    cos = F.linear(F.normalize(embeddings, dim=1), F.normalize(weight, dim=1))
    return cos.to(torch.promote_types(cos.dtype, torch.float32)).clamp(-1.0, 1.0)


def arc_target(target: torch.Tensor, m: float) -> torch.Tensor:
    """ArcFace target logit cos(θ + m), monotone past θ + m > π.

    Computed as ``cosθ·cos m − sinθ·sin m``. Where θ > π − m (``cosθ <= cos(π − m)``) cos(θ + m) would
    increase again, so the InsightFace fallback ``cosθ − m·sin(π − m)`` is used instead
    (``easy_margin=False`` in InsightFace; CurricularFace's official head does the same).
    """
    sin = torch.sqrt((1.0 - target * target).clamp(min=1e-12))
    shifted = target * math.cos(m) - sin * math.sin(m)
    return torch.where(target > math.cos(math.pi - m), shifted, target - m * math.sin(math.pi - m))


def _target_mask(labels: torch.Tensor, num_columns: int) -> torch.Tensor:
    """``(B, C')`` bool one-hot of ``labels``; rows labelled ``-1`` are all False."""
    columns = torch.arange(num_columns, device=labels.device)
    return labels.unsqueeze(1) == columns.unsqueeze(0)


def _gather_target(cos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row target cosine (differentiable); 0 for rows whose target is not among the columns."""
    return (cos * mask).sum(dim=1)


def _replace_target(cos: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, target.unsqueeze(1), cos)


class MarginHead(nn.Module):
    """Base class: normalised classifier weights plus a margin on the target cosine.

    Args:
        embedding_size: feature dimension D.
        num_classes: number of classes C (the total, also under Partial FC).
        s: logit scale.
        with_weight: allocate the ``(C, D)`` classifier; pass False when the head only serves as the
            margin of a :class:`~fr_train.objective.partial_fc.PartialFC`, which owns sharded weights itself.
    """

    #: True when :meth:`margin` needs ``frozen_cos`` (cosines with detached classifier weights).
    needs_frozen_cos: ClassVar[bool] = False

    def __init__(self, embedding_size: int, num_classes: int, s: float, *, with_weight: bool = True):
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"{type(self).__name__}: num_classes must be >= 2, got {num_classes}")
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        self.s = s
        if with_weight:
            self.weight = nn.Parameter(torch.empty(num_classes, embedding_size).normal_(0.0, 0.01))
        else:
            self.register_parameter("weight", None)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits ``(B, C)`` for ``embeddings`` ``(B, D)`` and ``labels`` ``(B,)`` in [0, C)."""
        if self.weight is None:
            raise RuntimeError(f"{type(self).__name__} was built with_weight=False; use margin()")
        labels = labels.long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes}), "
                             f"got range [{int(labels.min())}, {int(labels.max())}]")
        cos = cosine_logits(embeddings, self.weight)
        frozen = cosine_logits(embeddings, self.weight.detach()) if self.needs_frozen_cos else None
        return self.margin(cos, labels, frozen_cos=frozen)

    def margin(self, cos: torch.Tensor, labels: torch.Tensor, *, frozen_cos: torch.Tensor | None = None,
               row_sum: RowSum = _no_shards) -> torch.Tensor:
        """Turn cosines into scaled margin logits (see the module docstring for the arguments)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, s={self.s}"


class ArcFace(MarginHead):
    """Additive angular margin: target logit s·cos(θ_y + m).

    Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition",
    https://arxiv.org/abs/1801.07698. For θ_y > π − m the fallback of :func:`arc_target` applies
    (no easy margin).
    """

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.5,
                 *, with_weight: bool = True):
        super().__init__(embedding_size, num_classes, s, with_weight=with_weight)
        self.m = m

    def margin(self, cos: torch.Tensor, labels: torch.Tensor, *, frozen_cos: torch.Tensor | None = None,
               row_sum: RowSum = _no_shards) -> torch.Tensor:
        mask = _target_mask(labels, cos.shape[1])
        target = arc_target(_gather_target(cos, mask), self.m)
        return _replace_target(cos, mask, target) * self.s


class CosFace(MarginHead):
    """Large margin cosine loss: target logit s·(cos θ_y − m).

    Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition",
    https://arxiv.org/abs/1801.09414.
    """

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.4,
                 *, with_weight: bool = True):
        super().__init__(embedding_size, num_classes, s, with_weight=with_weight)
        self.m = m

    def margin(self, cos: torch.Tensor, labels: torch.Tensor, *, frozen_cos: torch.Tensor | None = None,
               row_sum: RowSum = _no_shards) -> torch.Tensor:
        mask = _target_mask(labels, cos.shape[1])
        return _replace_target(cos, mask, _gather_target(cos, mask) - self.m) * self.s


class CurricularFace(MarginHead):
    """ArcFace target with curriculum-modulated hard negatives.

    Huang et al., "CurricularFace: Adaptive Curriculum Learning Loss for Deep Face Recognition",
    https://arxiv.org/abs/2004.00288. Target: :func:`arc_target`. A non-target cosine with
    cos θ_j > cos(θ_y + m) (raw value, no fallback) is "hard" and becomes cos θ_j·(t + cos θ_j);
    others are unchanged. In training mode the buffer ``t`` is updated *before* it is used, under no
    grad, as ``t ← momentum·r + (1 − momentum)·t`` where r is the mean target cosine of the global
    batch (summed and counted over all ranks when distributed). In eval mode ``t`` is left alone.

    Args:
        momentum: EMA weight of the new batch mean: 0.01 in the official code (the paper's "α = 0.99"
            describes the same update), 0.1 in TFace.
    """

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.5,
                 momentum: float = 0.01, *, with_weight: bool = True):
        super().__init__(embedding_size, num_classes, s, with_weight=with_weight)
        self.m = m
        self.momentum = momentum
        self.register_buffer("t", torch.zeros(()))

    @torch.no_grad()
    def _update_t(self, target: torch.Tensor, has_target: torch.Tensor) -> None:
        target = target.to(self.t.dtype)
        stats = torch.stack([target[has_target].sum(), has_target.sum().to(target.dtype)])
        dist.all_reduce(stats, "sum")
        if stats[1] > 0:
            self.t.mul_(1.0 - self.momentum).add_(self.momentum * stats[0] / stats[1])

    def margin(self, cos: torch.Tensor, labels: torch.Tensor, *, frozen_cos: torch.Tensor | None = None,
               row_sum: RowSum = _no_shards) -> torch.Tensor:
        mask = _target_mask(labels, cos.shape[1])
        target = _gather_target(cos, mask)
        if self.training:
            self._update_t(target.detach(), mask.any(dim=1))
        full_target = row_sum(target.detach())
        sin = torch.sqrt((1 - full_target**2).clamp(min=0))
        bound = full_target * math.cos(self.m) - sin * math.sin(self.m)  # raw cos(θ_y + m)
        hard = cos.detach() > bound.unsqueeze(1)
        modulated = torch.where(hard, cos * (self.t.to(cos.dtype) + cos), cos)
        return _replace_target(modulated, mask, arc_target(target, self.m)) * self.s


class CIFP(MarginHead):
    """CosFace with the consistent instance false-positive penalty.

    Xu et al., "Consistent Instance False Positive Improves Fairness in Face Recognition",
    https://arxiv.org/abs/2106.05519. Following TFace's reference head:

    1. Negatives scoring above their row's target cosine ("misclassified") are set aside; their count
       and the number of negatives (non-target cosines present: all classes, or under Partial FC the
       sampled centres) are summed over the batch of all ranks.
    2. k = ⌈far · (#negatives − #misclassified)⌉ with far = ``target_fpr`` or 1/(C − 1) (then computed
       exactly in integers); the unified threshold T_u is the k-th largest remaining negative cosine
       over all ranks (per-rank top-k lists are all-gathered).
    3. Instance false positives: remaining negatives with cosine strictly above T_u.
    4. Penalty p_i = mean over row i's false positives of cos², 0 without any. Each value comes from the
       live weights when cos_ij < cos θ_y − m, otherwise from the detached weights (so only the
       embedding receives that gradient).
    5. Target logit: cos θ_y − m − (1 + cos θ_y')·p_i, θ_y' computed with detached weights; non-target
       logits unchanged; all scaled by s.

    The reference divides by the number of false positives with a non-zero square; this head divides by
    the number of false positives (identical unless a false-positive cosine is exactly 0).
    """

    needs_frozen_cos: ClassVar[bool] = True

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.35,
                 target_fpr: float | None = None, *, with_weight: bool = True):
        super().__init__(embedding_size, num_classes, s, with_weight=with_weight)
        if target_fpr is not None and not 0.0 < target_fpr <= 1.0:
            raise ConfigError(f"CIFP: target_fpr must lie in (0, 1], got {target_fpr}")
        self.m = m
        self.target_fpr = target_fpr

    def _rank_k(self, num_candidates: int) -> int:
        """Number k of false positives allowed among ``num_candidates`` negatives (at least 0)."""
        if self.target_fpr is None:
            return -(-num_candidates // (self.num_classes - 1))
        return math.ceil(self.target_fpr * num_candidates - 1e-9)

    @torch.no_grad()
    def unified_threshold(self, negatives: torch.Tensor, k: int) -> torch.Tensor:
        """k-th largest value of ``negatives`` (non-candidates set to -inf) over all ranks."""
        flat = negatives.flatten()
        top = torch.topk(flat, min(k, flat.numel())).values
        padded = torch.full((k,), float("-inf"), dtype=flat.dtype, device=flat.device)
        padded[: top.numel()] = top
        return torch.topk(dist.all_gather_nograd(padded), k).values[-1]

    @torch.no_grad()
    def false_positives(self, cos: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(B, C')`` bool instance false positives (steps 1-3) for per-row target cosines ``target``."""
        negatives = cos.masked_fill(mask, float("-inf"))
        misclassified = negatives > target.unsqueeze(1)
        counts = torch.stack([(~mask).sum(), misclassified.sum()]).long()
        dist.all_reduce(counts, "sum")
        k = self._rank_k(int(counts[0] - counts[1]))
        if k < 1:
            return torch.zeros_like(mask)
        candidates = negatives.masked_fill(misclassified, float("-inf"))
        return candidates > self.unified_threshold(candidates, k)

    def margin(self, cos: torch.Tensor, labels: torch.Tensor, *, frozen_cos: torch.Tensor | None = None,
               row_sum: RowSum = _no_shards) -> torch.Tensor:
        if frozen_cos is None:
            raise ValueError("CIFP.margin needs frozen_cos, the cosines computed with detached weights")
        mask = _target_mask(labels, cos.shape[1])
        target = _gather_target(cos, mask)
        full_target = row_sum(target.detach())
        fp = self.false_positives(cos.detach(), mask, full_target)
        live = cos.detach() < (full_target - self.m).unsqueeze(1)
        squares = torch.where(fp, torch.where(live, cos, frozen_cos) ** 2, torch.zeros_like(cos))
        count = row_sum(fp.sum(dim=1).to(cos.dtype)).clamp(min=1.0)
        penalty = row_sum(squares.sum(dim=1)) / count
        new_target = target - self.m - (1.0 + _gather_target(frozen_cos, mask)) * penalty
        return _replace_target(cos, mask, new_target) * self.s


#: Name -> head class, for configs.
HEADS: dict[str, type[MarginHead]] = {
    "arcface": ArcFace,
    "cosface": CosFace,
    "curricularface": CurricularFace,
    "cifp": CIFP,
}


def build_head(name: str, embedding_size: int, num_classes: int, **kwargs) -> MarginHead:
    """Build the head registered as ``name`` (keyword arguments: ``s``, ``m``, head-specific ones)."""
    try:
        head_class = HEADS[name]
    except KeyError:
        raise ConfigError(f"unknown head {name!r}; known: {', '.join(sorted(HEADS))}") from None
    return head_class(embedding_size, num_classes, **kwargs)
