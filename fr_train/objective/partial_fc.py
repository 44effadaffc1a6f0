"""Partial FC: margin-softmax classifier for 10^5-10^7 classes, sharded across ranks, sampled negatives.

An, Zhu, Xiao, Wu, Guo, Deng, Huang, Yu, Fu, Qin, "Partial FC: Training 10 Million Identities on a
Single Machine", https://arxiv.org/abs/2010.05222 (and "Killing Two Birds with One Stone: Efficient
and Robust Training of Face Recognition CNNs by Partial FC", https://arxiv.org/abs/2203.15565).

Each rank owns a contiguous range of class centres (the first ``C % W`` ranks get one extra). In a
step the embeddings and labels of all ranks are all-gathered; each rank keeps every centre that is a
positive of the global batch plus uniformly sampled negatives up to ``sample_rate`` of its shard,
computes cosines against them, applies the injected head's :meth:`~fr_train.objective.heads.MarginHead.margin`
(target column remapped locally, ``-1`` for targets on other shards) and a distributed softmax
cross-entropy (row max and exponential sums all-reduced). The result is the mean loss over the global
batch, identical on every rank.

Gradients: centre shards get exactly the gradient of that loss (they are not wrapped in DDP). The
backbone is meant to be wrapped in DDP, which averages over ranks; the embedding gradient is scaled
by the world size before the gather so that the averaged backbone gradient equals the single-process
gradient of the global-batch loss.
"""

from __future__ import annotations

import torch
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train import dist
from fr_train.objective.heads import MarginHead, cosine_logits

__all__ = ["PartialFC", "shard_range", "sharded_cross_entropy", "shard_row_sum"]


def shard_range(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, count)`` of the contiguous class range owned by ``rank``."""
    base, extra = divmod(num_classes, world_size)
    return rank * base + min(rank, extra), base + (rank < extra)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is again summed over ranks (each rank's input feeds every output)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return dist.all_reduce(tensor.clone(), "sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return dist.all_reduce(grad.clone(), "sum")


def shard_row_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a per-row quantity over the class shards of all ranks (differentiable; identity for one rank)."""
    if dist.world_size() == 1:
        return values
    if not values.requires_grad:
        return dist.all_reduce(values.clone(), "sum")
    return _AllReduceSum.apply(values)


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


class _ShardedCrossEntropy(torch.autograd.Function):
    """Mean softmax cross-entropy over rows whose columns are split across ranks."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ctx.dtype = logits.dtype
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        row_max = dist.all_reduce(logits.max(dim=1).values, "max")
        exp = torch.exp(logits - row_max.unsqueeze(1))
        denominator = dist.all_reduce(exp.sum(dim=1), "sum")
        owned = labels >= 0
        target = torch.zeros_like(row_max)
        target[owned] = logits[owned, labels[owned]]
        target = dist.all_reduce(target, "sum")
        loss = (torch.log(denominator) + row_max - target).mean()
        ctx.save_for_backward(exp / denominator.unsqueeze(1), labels)
        return loss

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        prob, labels = ctx.saved_tensors
        owned = torch.nonzero(labels >= 0).squeeze(1)
        grad_logits = prob.clone()
        grad_logits[owned, labels[owned]] -= 1.0
        return (grad_logits * (grad / prob.shape[0])).to(ctx.dtype), None


def sharded_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` ``(B, C_local)`` whose classes are split across ranks.

    Args:
        logits: this rank's columns for every row of the (gathered) batch.
        labels: ``(B,)`` local target column, ``-1`` where the target lives on another rank; each row
            must have its target on exactly one rank.
    """
    return _ShardedCrossEntropy.apply(logits, labels)


class PartialFC(nn.Module):
    """Sharded class centres with negative sampling around an injected margin head.

    Args:
        head: margin head (its :meth:`margin` is used; build it with ``with_weight=False`` so it does not
            allocate a full classifier). Its buffers (CurricularFace ``t``) live in this module's state.
        embedding_size: feature dimension D.
        num_classes: total number of classes C over all ranks.
        sample_rate: fraction of this rank's centres used per step (positives of the global batch are
            always kept, so more may be used); 1.0 disables sampling.
        generator: random generator for sampling negatives (on the weight's device).
    """

    def __init__(self, head: MarginHead, embedding_size: int, num_classes: int, sample_rate: float = 1.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not 0.0 < sample_rate <= 1.0:
            raise ConfigError(f"PartialFC: sample_rate must lie in (0, 1], got {sample_rate}")
        if head.num_classes != num_classes:
            raise ConfigError(f"PartialFC: head built for {head.num_classes} classes, not {num_classes}")
        self.head = head
        self.num_classes = num_classes
        self.class_start, self.num_local = shard_range(num_classes, dist.rank(), dist.world_size())
        self.num_sample = max(1, int(sample_rate * self.num_local))
        self.generator = generator
        self.weight = nn.Parameter(torch.empty(self.num_local, embedding_size).normal_(0.0, 0.01))

    def _local_labels(self, labels: torch.Tensor) -> torch.Tensor:
        local = labels - self.class_start
        return torch.where((local >= 0) & (local < self.num_local), local, torch.full_like(local, -1))

    def sample(self, local_labels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Choose centres for this step: ``(sorted centre indices or None for all, remapped labels)``."""
        if self.num_sample >= self.num_local:
            return None, local_labels
        positives = torch.unique(local_labels[local_labels >= 0])
        score = torch.rand(self.num_local, generator=self.generator, device=self.weight.device)
        score[positives] = 2.0
        count = max(self.num_sample, positives.numel())
        index = torch.topk(score, count).indices.sort().values
        remap = torch.full((self.num_local,), -1, dtype=torch.long, device=index.device)
        remap[index] = torch.arange(count, device=index.device)
        return index, torch.where(local_labels >= 0, remap[local_labels.clamp(min=0)], local_labels)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean margin-softmax loss of the global batch, given this rank's ``embeddings`` and ``labels``."""
        labels = labels.long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes}), "
                             f"got range [{int(labels.min())}, {int(labels.max())}]")
        embeddings = _ScaleGrad.apply(embeddings, float(dist.world_size()))
        gathered = dist.all_gather_with_grad(embeddings)
        index, local_labels = self.sample(self._local_labels(dist.all_gather_nograd(labels)))
        weight = self.weight if index is None else self.weight[index]
        cos = cosine_logits(gathered, weight)
        frozen = cosine_logits(gathered, weight.detach()) if self.head.needs_frozen_cos else None
        logits = self.head.margin(cos, local_labels, frozen_cos=frozen, row_sum=shard_row_sum)
        return sharded_cross_entropy(logits, local_labels)
