"""Checkpoints that resume a run exactly: state dicts + a JSON sidecar, read back with ``weights_only``.

A checkpoint is a folder ``OUTPUT/checkpoints/step-00001234/`` holding:

* ``model.pt``: the backbone state dict (plain keys; also what
  :func:`fr_train.checkpoints.weights.load_weights` and a teacher or fine-tuning run read);
* ``objective.pt``: the objective state (head classifier, CurricularFace ``t``, EKD thresholds) and
  ``classifier.pt`` the Partial FC shard when used; ``optimizer.pt``; ``scaler.pt`` (fp16 GradScaler);
  files whose content differs between ranks (Partial FC shards and their optimiser state) get a
  ``.rank{r}`` suffix;
* ``rng.rank{r}.pt``: every RNG state of rank ``r`` as tensors (python, numpy, torch CPU/CUDA, extra
  generators), no pickled objects;
* ``state.json``: step, epoch, position in the epoch, world size, the files, metrics;
* ``config.yaml``: the resolved training config.

The folder is written under a temporary name by every rank and renamed by rank 0 once all ranks have
written, then ``checkpoints/latest.json`` is updated atomically: a crash never leaves a half checkpoint
under a final name. Everything is loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fr_data.io.atomic import atomic_path, atomic_write_text
from fr_data.io.errors import DataError

__all__ = ["TrainState", "capture_rng", "restore_rng", "CheckpointStore", "save_tensors", "load_tensors",
           "read_state", "rank_name"]

LATEST = "latest.json"
STATE = "state.json"
PREFIX = "step-"
PARTIAL = ".partial"


@dataclass
class TrainState:
    """Where a run stands (the JSON sidecar of a checkpoint).

    Attributes:
        step: optimiser updates done.
        epoch: the epoch the next step belongs to.
        epoch_step: batches of that epoch already consumed (the next batch's index in the epoch).
        world_size: ranks of the run that wrote it.
        sharded: some files are per rank (``.rank{r}``).
        images_seen: images forwarded through the trained backbone so far, summed over ranks
            (classification batches, composer branches, low-resolution KD copies): the run's compute.
        metrics: last logged metrics (informative).
    """

    step: int = 0
    epoch: int = 0
    epoch_step: int = 0
    world_size: int = 1
    sharded: bool = False
    images_seen: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


def capture_rng(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, torch.Tensor]:
    """Every RNG state of this process as tensors: python ``random``, numpy global, torch CPU/CUDA and
    the named extra ``generators``."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python_version": torch.tensor(version),
        "python_mt": torch.tensor(mt, dtype=torch.int64),
        "python_gauss": torch.tensor([] if gauss is None else [gauss], dtype=torch.float64),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_pos": torch.tensor([pos, has_gauss]),
        "numpy_cached": torch.tensor(cached, dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda{i}"] = cuda_state
    for name, gen in (generators or {}).items():
        state[f"gen.{name}"] = gen.get_state()
    return state


def restore_rng(state: Mapping[str, torch.Tensor],
                generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Set every RNG from :func:`capture_rng`'s output (CUDA states only where devices exist)."""
    gauss = state["python_gauss"].tolist()
    random.setstate((int(state["python_version"]), tuple(state["python_mt"].tolist()),
                     gauss[0] if gauss else None))
    pos, has_gauss = state["numpy_pos"].tolist()
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss,
                         float(state["numpy_cached"])))
    torch.set_rng_state(state["torch"])
    cuda = [state[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in state]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    for name, gen in (generators or {}).items():
        gen.set_state(state[f"gen.{name}"])


def save_tensors(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` a state dict (tensors, numbers, strings, lists, dicts) atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_tensors(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a file written by :func:`save_tensors` with the restricted unpickler.

    Raises:
        DataError: naming the file when it is missing or holds anything but plain state.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, OSError, RuntimeError, ValueError, EOFError) as exc:
        raise DataError(path, "", f"cannot load as a weights-only checkpoint file: {exc}") from exc


def rank_name(name: str, rank: int, per_rank: bool) -> str:
    """``objective.pt`` -> ``objective.rank3.pt`` for per-rank files."""
    if not per_rank:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.rank{rank}{dot}{ext}"


class CheckpointStore:
    """The ``checkpoints/`` folder of a run: write, list, prune, find the latest.

    Args:
        folder: ``OUTPUT/checkpoints``.
        rank: this process's rank (rank 0 renames folders and writes shared files).
        barrier: synchronises all ranks (identity for one process).
    """

    def __init__(self, folder: str | os.PathLike, rank: int = 0, barrier: Callable[[], None] = lambda: None):
        self.folder = Path(folder)
        self.rank = rank
        self.barrier = barrier

    def path(self, step: int) -> Path:
        return self.folder / f"{PREFIX}{step:08d}"

    def save(self, state: TrainState, shared: Callable[[Path], None], own: Callable[[Path], None]) -> Path:
        """Write checkpoint ``state.step``: rank 0 calls ``shared(tmp)``, every rank ``own(tmp)``; then
        rank 0 adds ``state.json``, renames the folder to its final name and updates ``latest.json``."""
        final = self.path(state.step)
        tmp = final.with_name(final.name + PARTIAL)
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            shared(tmp)
        self.barrier()
        own(tmp)
        self.barrier()
        if self.rank == 0:
            atomic_write_text(tmp / STATE, json.dumps(asdict(state), indent=1))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            atomic_write_text(self.folder / LATEST, json.dumps({"step": state.step, "path": final.name}))
        self.barrier()
        return final

    def checkpoints(self) -> list[Path]:
        """Complete checkpoint folders, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.glob(f"{PREFIX}*") if p.is_dir() and not p.name.endswith(PARTIAL)]
        return sorted(p for p in found if (p / STATE).is_file())

    def prune(self, keep: int) -> None:
        """Delete all but the ``keep`` most recent checkpoints (rank 0)."""
        if self.rank == 0:
            for old in self.checkpoints()[:-keep]:
                shutil.rmtree(old, ignore_errors=True)

    def latest(self) -> Path | None:
        """The most recent complete checkpoint, or None."""
        found = self.checkpoints()
        return found[-1] if found else None


def read_state(checkpoint: str | os.PathLike) -> TrainState:
    """The ``state.json`` of a checkpoint folder.

    Raises:
        DataError: naming the file when it is missing or malformed.
    """
    path = Path(checkpoint) / STATE
    try:
        return TrainState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(path, "", f"not a checkpoint sidecar: {exc}") from exc
