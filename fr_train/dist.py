"""Small torch.distributed helpers that work (as identities) when no process group is running, and the
one way this project leaves a process group (:func:`shutdown`).

Importing this module also imports ``torch.distributed.nn.functional`` (see :func:`shutdown` for why it
must happen before ``init_process_group``).
"""

from __future__ import annotations

import gc
import os
import weakref

import torch
import torch.distributed as dist

# torch.distributed.nn.functional binds ``group=group.WORLD`` as a default argument when it is first
# imported. DDP imports it lazily (through torch._dynamo) on first use, i.e. after the group exists, so
# its functions would keep that group, with its gloo threads and sockets, alive after
# destroy_process_group until the interpreter tears its modules down. Imported here, before any group,
# the defaults are None (= the default group at call time). (Builds without torch.distributed lack it.)
if dist.is_available():
    import torch.distributed.nn.functional  # noqa: F401


def is_dist() -> bool:
    """True when a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


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


GLOO_THREADS = ("gloo", "pt_gloo")
"""Name prefixes of the threads a gloo process group runs (``/proc/self/task/*/comm``)."""


def shutdown(*, synchronise: bool = True) -> None:
    """Leave the default process group for good: barrier, destroy, and make sure it is released.

    ``synchronise=False`` skips the barrier (after an error on this rank the others may never reach it).
    A group that outlives ``destroy_process_group`` (some object still holds it) is destroyed during the
    interpreter's shutdown instead, with its gloo I/O threads still serving sockets whose peers are
    exiting too: that teardown can abort the process (SIGABRT, exit 134) after a finished run. So the
    group is destroyed while every rank still waits for it, and a leftover reference is an error.

    Raises:
        RuntimeError: the group is still alive after destroy_process_group (named with its holders).
    """
    if not is_dist():
        return
    if synchronise and world_size() > 1:
        dist.barrier()
    group = weakref.ref(dist.group.WORLD)
    dist.destroy_process_group()
    gc.collect()
    if group() is not None:
        holders = sorted({type(r).__name__ for r in gc.get_referrers(group())}) or ["an untracked object"]
        raise RuntimeError(f"the process group outlived destroy_process_group; held by {', '.join(holders)} "
                           "(a default argument bound by a module imported after init_process_group?)")


def gloo_threads() -> list[str]:
    """Names of this process's gloo threads (Linux; empty where /proc is missing)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return []
    names = []
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            continue
    return sorted(n for n in names if n.startswith(GLOO_THREADS))
