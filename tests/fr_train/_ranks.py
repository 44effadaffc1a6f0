"""The one harness for multi-rank tests: ``run_ranks(fn, folder, *args)``.

Starts ``world`` fresh processes (``torch.multiprocessing.spawn``), joins each to a gloo group through a
``file://`` rendezvous in ``folder`` (no TCP port to pick, so no port clash with other jobs on a shared
machine), runs ``fn(rank, world, folder, *args)`` and leaves the group through
:func:`fr_train.dist.shutdown` (barrier, destroy, the group really released). A rank whose gloo threads
are still running afterwards fails the run: a group destroyed only at interpreter exit can abort the
process (SIGABRT) while its peer tears down its sockets.

``fn`` must be a module-level function (it is pickled by reference) and writes its results under
``folder``; importing this module imports :mod:`fr_train.dist` before any group exists, which that
module needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from fr_train import dist as frd

WORLD = 2


def run_ranks(fn: Callable[..., None], folder: Path, *args: Any, world: int = WORLD) -> None:
    """Run ``fn(rank, world, str(folder), *args)`` on ``world`` gloo ranks; raises if any rank fails."""
    mp.spawn(_rank_main, args=(fn, world, str(folder), args), nprocs=world, join=True)


def _rank_main(rank: int, fn: Callable[..., None], world: int, folder: str, args: tuple) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"file://{Path(folder) / 'rendezvous'}", rank=rank,
                                  world_size=world)
    finished = False
    try:
        fn(rank, world, folder, *args)
        finished = True
    finally:
        frd.shutdown(synchronise=finished)
    left = frd.gloo_threads()
    if left:
        raise RuntimeError(f"rank {rank}: gloo threads still running after shutdown: {left}")
