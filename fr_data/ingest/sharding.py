"""Running a sharding plan: shards written in parallel, resumed after an interruption, then finalised.

:func:`write_shards` writes the shard folder described in :mod:`fr_data.folders.shard_folder`. Finished
shards of an interrupted run (their ``.parts/`` sidecars) are skipped; ``samples.parquet`` is written
last, so its presence marks a finished folder. The folder is written in place (that is what makes it
resumable), under its lock: a second run to the same folder is refused while the first one lives.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fr_data.folders import shard_folder as sf
from fr_data.ingest.plan import ShardOptions, ShardPlan, make_plan
from fr_data.ingest.shard_writer import ShardJob, ShardRecord, finished_shard, write_shard
from fr_data.ingest.source import Skipped, Source, skipped_of
from fr_data.io.atomic import remove_stale_temps
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.parquet import concat_parquet, read_table, write_table
from fr_data.io.publish import output_lock

_WORKER_JOB: ShardJob | None = None


def _init_worker(job: ShardJob) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job


def _run_in_worker(shard_id: int) -> ShardRecord | tuple[str, str, str]:
    """Pool task; a DataError comes back as a tuple (its custom __init__ does not survive pickling)."""
    try:
        return write_shard(_WORKER_JOB, shard_id)
    except DataError as exc:
        return (exc.path, exc.where, exc.reason)


def _run_pending(job: ShardJob, pending: list[int], workers: int,
                 progress: Callable[[ShardRecord], None]) -> None:
    if workers <= 1 or len(pending) <= 1:
        for shard_id in pending:
            progress(write_shard(job, shard_id))
        return
    ctx = multiprocessing.get_context("fork")  # the source object is inherited, never pickled
    with ctx.Pool(min(workers, len(pending)), initializer=_init_worker, initargs=(job,)) as pool:
        for result in pool.imap_unordered(_run_in_worker, pending):
            if isinstance(result, tuple):
                pool.terminate()
                pool.join()
                remove_stale_temps(job.out)  # temp files of the shards the other workers were writing
                raise DataError(*result)
            progress(result)


@dataclass
class ShardRun:
    """What :func:`write_shards` did."""

    out: Path
    plan: ShardPlan
    shards: list[ShardRecord]
    resumed: int = 0
    already_complete: bool = False
    rejected: pa.Table = field(default_factory=lambda: sf.REJECTED_SCHEMA.empty_table())

    @property
    def num_samples(self) -> int:
        return sum(s.count for s in self.shards)


def write_shards(source: Source, out: str | os.PathLike, options: ShardOptions | None = None, *,
                 workers: int = 1, args: dict[str, Any] | None = None,
                 progress: Callable[[ShardRecord], None] | None = None) -> ShardRun:
    """Shard ``source`` into ``out``, resuming a previous run with the same plan.

    Args:
        source: a :class:`~fr_data.ingest.source.Source`.
        out: output folder (created if needed).
        options: the sharding options.
        workers: processes writing whole shards in parallel (forked; the source is inherited).
        args: the resolved command-line arguments, stored in ``shards.json``.
        progress: called once per shard as it completes (including shards found finished).

    Raises:
        ConfigError: ``out`` holds a different plan or unrelated files.
        DataError: the first bad record (file + key) unless ``options.errors`` skips it; another run is
            writing ``out`` (:func:`fr_data.io.publish.output_lock`).
    """
    options = options or ShardOptions()
    out = Path(out)
    plan, order = make_plan(source, options)
    with output_lock(out, "shard folder"):
        return _write_locked(source, out, options, plan, order, workers, args, progress)


def _write_locked(source: Source, out: Path, options: ShardOptions, plan: ShardPlan, order: np.ndarray,
                  workers: int, args: dict[str, Any] | None, progress: Callable[[ShardRecord], None] | None) -> ShardRun:
    """:func:`write_shards` holding the lock of ``out`` (a concurrent run would remove this one's
    temporary files and sidecars)."""
    if _claim_folder(out, plan):
        return _completed_run(out, plan)
    job = ShardJob(source, plan, order, out, options.errors)
    report = progress or (lambda record: None)
    done = {i: finished_shard(out, plan.shard_name(i)) for i in range(plan.num_shards)}
    for record in filter(None, done.values()):
        report(record)
    pending = [i for i, record in done.items() if record is None]
    _run_pending(job, pending, workers, report)
    shards = [finished_shard(out, plan.shard_name(i)) for i in range(plan.num_shards)]
    if any(s is None for s in shards):
        raise RuntimeError(f"{out}: some shards were not written; rerun to resume")
    rejected = _finalize(out, plan, shards, args or {}, skipped_of(source))
    return ShardRun(out, plan, shards, resumed=plan.num_shards - len(pending), rejected=rejected)


def _claim_folder(out: Path, plan: ShardPlan) -> bool:
    """Check or write ``plan.json``; return True when ``out`` already holds this plan's finished output."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    remove_stale_temps(sf.parts_dir(out))
    stored = sf.read_plan(out)
    if stored is not None:
        if stored.get("fingerprint") != plan.fingerprint():
            diff = {k: (v, stored.get("plan", {}).get(k)) for k, v in dataclasses.asdict(plan).items()
                    if stored.get("plan", {}).get(k) != v}
            raise ConfigError(f"{out} was started with a different plan; rerun with the same arguments or use "
                              f"a new output folder. Differences (now, before): {diff}")
        return sf.samples_path(out).exists()
    if any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no plan.json; refusing to write shards into it")
    sf.write_plan(out, plan.fingerprint(), dataclasses.asdict(plan))
    sf.parts_dir(out).mkdir(exist_ok=True)
    return False


def _completed_run(out: Path, plan: ShardPlan) -> ShardRun:
    shards = [ShardRecord(**s) for s in sf.load_listing(out)["shards"]]
    shutil.rmtree(sf.parts_dir(out), ignore_errors=True)
    rejected = sf.read_rejected(out)
    return ShardRun(out, plan, shards, resumed=len(shards), already_complete=True, rejected=rejected)


def _finalize(out: Path, plan: ShardPlan, shards: list[ShardRecord], args: dict[str, Any],
              skipped: list[Skipped]) -> pa.Table:
    """Write rejected.parquet (what the source left out first, then each shard's rejected records),
    shards.json, then samples.parquet (last); drop the sidecars."""
    rejected_parts = [sf.part_paths(out, s.name)[1] for s in shards]
    opening = sf.rejected_rows([(os.fspath(s.path), s.index, None, s.where, s.reason) for s in skipped])
    rejected = pa.concat_tables([opening] + [read_table(p, sf.REJECTED_SCHEMA) for p in rejected_parts])
    write_table(rejected, out / sf.REJECTED_FILE, sf.REJECTED_SCHEMA)
    listing = {"format_version": sf.FORMAT_VERSION, "fingerprint": plan.fingerprint(),
               "plan": dataclasses.asdict(plan), "args": args,
               "num_samples": sum(s.count for s in shards), "num_rejected": rejected.num_rows,
               "shards": [dataclasses.asdict(s) for s in shards]}
    sf.write_listing(out, listing)
    concat_parquet([sf.part_paths(out, s.name)[0] for s in shards], sf.samples_path(out), sf.SAMPLES_SCHEMA,
                   sf.PROVENANCE_SCHEMA)
    shutil.rmtree(sf.parts_dir(out), ignore_errors=True)
    return rejected
