"""Where code runs: the device of this process and its place in a ``torch.distributed`` process group.

The one home of device choice and process-group setup for every command (``hardmine embed``, training,
the demo and the experiment):

- :func:`resolve_device`: ``auto`` / ``cpu`` / ``cuda`` -> a ``torch.device``; under torchrun a CUDA rank
  takes ``cuda:LOCAL_RANK``. ``auto`` falls back to the CPU; an explicit ``cuda`` without a GPU is an error.
- :func:`join_process_group` / :func:`leave_process_group`: join the torchrun group (``env://``; NCCL on
  CUDA, gloo on CPU) when ``WORLD_SIZE`` > 1, and leave it for good (barrier, destroy, really released).
- :func:`process_group`: both, as a context manager around a command's work.
- :func:`rank_world`: ``(rank, world_size)``, ``(0, 1)`` without a group.

Importing this module also imports ``torch.distributed.nn.functional`` (see :func:`leave_process_group`
for why that must happen before a group exists).
"""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from fr_data.io.errors import ConfigError

__all__ = ["DEVICE_CHOICES", "GLOO_THREADS", "gloo_threads", "is_distributed", "join_process_group",
           "leave_process_group", "process_group", "rank_world", "resolve_device"]

# torch.distributed.nn.functional binds ``group=group.WORLD`` as a default argument when it is first
# imported. DDP imports it lazily (through torch._dynamo) on first use, i.e. after the group exists, so
# its functions would keep that group, with its gloo threads and sockets, alive after
# destroy_process_group until the interpreter tears its modules down. Imported here, before any group,
# the defaults are None (= the default group at call time). (Builds without torch.distributed lack it.)
if dist.is_available():
    import torch.distributed.nn.functional

DEVICE_CHOICES = ("auto", "cpu", "cuda")

GLOO_THREADS = ("gloo", "pt_gloo")
"""Name prefixes of the threads a gloo process group runs (``/proc/self/task/*/comm``)."""


def resolve_device(choice: str = "auto") -> torch.device:
    """The device for ``choice``: ``auto`` = this process's local GPU when CUDA is available, else the CPU.

    A CUDA device is ``cuda:LOCAL_RANK`` (0 outside torchrun).

    Raises:
        ConfigError: an unknown choice, or ``cuda`` on a machine without a CUDA GPU.
    """
    if choice not in DEVICE_CHOICES:
        raise ConfigError(f"device {choice!r}: expected one of {', '.join(DEVICE_CHOICES)}")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device 'cuda': no CUDA GPU on this machine (use 'auto' or 'cpu')")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def is_distributed() -> bool:
    """True when a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` without a process group."""
    if is_distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def join_process_group(device: torch.device, timeout: timedelta | None = None) -> bool:
    """Join the torchrun process group (``env://``) when ``WORLD_SIZE`` > 1 and none runs yet.

    NCCL when ``device`` is a GPU (made this process's current device), gloo otherwise. Returns True when
    this call started the group (the caller then leaves it with :func:`leave_process_group`).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group(backend, init_method="env://", **kwargs)
    return True


def leave_process_group(*, synchronise: bool = True) -> None:
    """Leave the default process group for good: barrier, destroy, and make sure it is released.

    ``synchronise=False`` skips the barrier (after an error on this rank the others may never reach it).
    A group that outlives ``destroy_process_group`` (some object still holds it) is destroyed during the
    interpreter's shutdown instead, with its gloo I/O threads still serving sockets whose peers are
    exiting too: that teardown can abort the process (SIGABRT, exit 134) after a finished run. So the
    group is destroyed while every rank still waits for it, and a leftover reference is an error.
    Without a group this does nothing.

    Raises:
        RuntimeError: the group is still alive after destroy_process_group (named with its holders).
    """
    if not is_distributed():
        return
    if synchronise and dist.get_world_size() > 1:
        dist.barrier()
    group = weakref.ref(dist.group.WORLD)
    dist.destroy_process_group()
    gc.collect()
    if group() is not None:
        holders = sorted({type(r).__name__ for r in gc.get_referrers(group())}) or ["an untracked object"]
        raise RuntimeError(f"the process group outlived destroy_process_group; held by {', '.join(holders)} "
                           "(a default argument bound by a module imported after init_process_group?)")


@contextmanager
def process_group(device_choice: str = "auto", timeout: timedelta | None = None) -> Iterator[torch.device]:
    """Resolve the device, join the torchrun group if there is one, and leave it at the end.

    Yields the device. Ranks that finished meet at a barrier before the group goes; after an error the
    rank leaves without waiting for the others.
    """
    device = resolve_device(device_choice)
    started = join_process_group(device, timeout)
    finished = False
    try:
        yield device
        finished = True
    finally:
        if started:
            leave_process_group(synchronise=finished)


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
