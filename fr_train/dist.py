"""Small torch.distributed helpers that work (as identities) when no process group is running.

Joining and leaving the group, and the device choice, live in :mod:`fr_data.runtime` (one helper for every
command); :func:`shutdown` and :func:`gloo_threads` are its :func:`~fr_data.runtime.leave_process_group`
and :func:`~fr_data.runtime.gloo_threads`. Importing this module imports :mod:`fr_data.runtime`, which
imports ``torch.distributed.nn.functional`` before any group exists (why: see ``leave_process_group``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from fr_data import runtime
from fr_data.runtime import gloo_threads
from fr_data.runtime import is_distributed as is_dist
from fr_data.runtime import leave_process_group as shutdown

__all__ = ["all_gather_nograd", "all_gather_with_grad", "all_reduce", "gloo_threads", "is_dist", "rank",
           "shutdown", "world_size"]


def world_size() -> int:
    return runtime.rank_world()[1]


def rank() -> int:
    return runtime.rank_world()[0]


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather whose backward returns this rank's slice of the summed gradient."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.n = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        r = rank()
        return grad[r * ctx.n:(r + 1) * ctx.n]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-shaped ``tensor`` from all ranks along dim 0, differentiably.

    Gradients flowing into the gathered tensor are summed across ranks and each rank receives its own
    slice, so a loss computed identically on every rank and averaged by DDP is not scaled by the
    world size. Identity without a process group.
    """
    if not is_dist() or world_size() == 1:
        return tensor
    return _AllGatherWithGrad.apply(tensor)


@torch.no_grad()
def all_gather_nograd(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-shaped ``tensor`` from all ranks along dim 0 (no gradient)."""
    if not is_dist() or world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce (``sum``/``max``/``min``); identity without a process group."""
    if is_dist() and world_size() > 1:
        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
        dist.all_reduce(tensor, op=ops[op])
    return tensor
