"""The experiment's heavy work as jobs that run side by side in worker processes: one fine-tuning run, or
a group of backbones scored on the packs of one split.

Every job runs with one torch thread: on a small shared machine two single-threaded processes do about
three times the work of one process with two threads (measured: 320 vs 95 training images per CPU-second
of the tiny backbone, 1,560 vs 490 scoring forwards). With ``workers`` 1 the jobs run in this process, one
after the other. A job returns plain data; a bad-input error comes back as its message and is raised here
as a :class:`JobError` (exception classes with their own arguments do not cross processes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fr_data.folders.synth_folder import pack_file
from fr_data.folders.training_run_folder import weights_path
from fr_data.formats.verification import VerificationPack
from fr_data.io.errors import HardmineError
from fr_data.io.hashing import file_sha256
from fr_data.synth import PACKS
from fr_train.evaluation.attack import PairAttack
from fr_train.trainer import run as train_run
from hardmine.experiment.arms import ArmPlan
from hardmine.experiment.config import AttackSection
from hardmine.experiment.scoring import (PackScores, attack_pack, decode_uint8, load_backbone, load_pack,
                                         score_images)
from hardmine.pipelines.stages import cpu_seconds

__all__ = ["JobError", "finetune_job", "score_job", "run_jobs"]


class JobError(HardmineError):
    """A job failed on bad input (the message names the file or key, as the original error did)."""


def finetune_job(run: ArmPlan, out: Path) -> dict[str, Any]:
    """Train (or resume) one arm x seed; what its stamp records. ``out`` is the experiment folder."""
    started, cpu = time.perf_counter(), cpu_seconds()
    result = train_run(run.config, resume=True)
    seconds = time.perf_counter() - started
    if result.state.images_seen != run.images:
        raise JobError(f"{run.config.train.output}: the run forwarded {result.state.images_seen} images, "
                       f"the plan {run.images}")
    weights = weights_path(result.checkpoint)
    return {"steps": run.steps, "images_per_step": run.images_per_step, "images_seen": result.state.images_seen,
            "train_seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds() - cpu, 2),
            "checkpoint": str(weights.relative_to(out)), "sha256": file_sha256(weights),
            "final_loss": result.state.metrics.get("loss"), "load_average": [round(v, 1) for v in os.getloadavg()]}


def attacked_pairs(issame: np.ndarray, pairs: int | None) -> np.ndarray:
    """The pair indices attacked: every pair (``pairs`` None), else half genuine and half impostor pairs
    (the first of each kind in pack order; the other kind fills in where one runs out), in pack order. A
    plain prefix of a random pack can hold too few impostors for the FPR of the results rows."""
    issame = np.asarray(issame, dtype=bool)
    if pairs is None or pairs >= len(issame):
        return np.arange(len(issame))
    genuine, impostor = np.flatnonzero(issame), np.flatnonzero(~issame)
    g = min(len(genuine), max(pairs // 2, pairs - len(impostor)))
    return np.sort(np.concatenate([genuine[:g], impostor[:pairs - g]]))


def score_job(packs: Path, models: dict[str, Path], batch_size: int, device: str,
              attack: AttackSection | None = None, attacked: Sequence[str] = ()) -> dict[str, dict[str, PackScores]]:
    """Pair scores of every backbone in ``models`` on every pack of the folder ``packs`` (each pack decoded
    once for the group); the backbones named in ``attacked`` also under ``attack`` (``PACK@pgdE`` entries of
    the pairs :func:`attacked_pairs` picks; eps 0 is their clean scores, which the attack would return
    unchanged)."""
    backbones = {name: load_backbone(path, device) for name, path in models.items()}
    scores: dict[str, dict[str, PackScores]] = {name: {} for name in models}
    for spec in PACKS:
        pack: VerificationPack = load_pack(packs / pack_file(spec.name))
        images = decode_uint8(pack)
        for name, model in backbones.items():
            clean = scores[name][spec.name] = PackScores(score_images(model, images, batch_size), pack.issame)
            if attack is None or name not in attacked or spec.name not in attack.packs:
                continue
            chosen = attacked_pairs(pack.issame, attack.pairs)
            issame = pack.issame[chosen]
            pair_images = images[np.stack([2 * chosen, 2 * chosen + 1], axis=1).reshape(-1)]
            for eps in attack.eps:
                setting = PairAttack(eps / 255, attack.steps, attack.step_ratio, attack.seed)
                values = (clean.scores[chosen] if eps == 0 else
                          score_images(model, pair_images, batch_size, attack=setting, issame=issame))
                scores[name][attack_pack(spec.name, eps)] = PackScores(values, issame)
    return scores


def _guarded(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """Run ``fn`` with one torch thread; bad input becomes ``("error", message)``."""
    torch.set_num_threads(1)
    try:
        return "ok", fn(*args)
    except HardmineError as exc:
        return "error", str(exc)


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], workers: int) -> Iterator[tuple[int, Any]]:
    """``(index, fn(*jobs[index]))`` as each job finishes: in ``workers`` spawned processes, or here in order
    when ``workers`` is 1 (or there is one job).

    Raises:
        JobError: the first job that failed on bad input (the others still finish).
    """
    if workers <= 1 or len(jobs) <= 1:
        threads = torch.get_num_threads()
        try:
            for index, args in enumerate(jobs):
                yield index, _unwrap(_guarded(fn, *args))
        finally:
            torch.set_num_threads(threads)
        return
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_guarded, fn, *args): index for index, args in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                yield futures[future], _unwrap(future.result())
        except JobError:  # bad input in one job: the others still finish
            raise
        except BaseException:  # a crash, Ctrl-C, SIGTERM (SystemExit in the CLI), the caller leaving: no orphans
            _stop_workers(pool)
            raise


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued jobs and end the running ones (a fine-tuning run resumes from its checkpoint)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


def _unwrap(outcome: tuple[str, Any]) -> Any:
    status, value = outcome
    if status == "error":
        raise JobError(value)
    return value
