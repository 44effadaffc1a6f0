"""The stages the pipelines share, under one skip mechanism: stage stamps.

A stage is a function of explicit inputs (a synth config, a training config, a mining config, folders)
that returns a :class:`StageResult`. It runs through :meth:`Stamper.run`: skipped when its stamp
(:mod:`hardmine.pipelines.stamps`, ``OUT/stages/NAME.json``) says it finished from the same inputs and its
output still exists; resumed when it started from them (training continues from its latest checkpoint);
redone from scratch when its inputs' fingerprint changed. ``hardmine demo`` (:mod:`hardmine.pipelines.demo`)
and ``hardmine experiment`` (:mod:`hardmine.experiment.stages`) are recipes: each lists its stages in
order, builds their inputs from its own config and adds the stages only it has.

Where the shared stages write inside a pipeline folder ``OUT`` (:class:`Folders`)::

    OUT/synth/    the synthetic set (fr_data.folders.synth_folder)
    OUT/shards/   its shards (fr_data.folders.shard_folder)
    OUT/train/    the training run (fr_data.folders.training_run_folder)
    OUT/emb/      embeddings by the trained backbone (fr_data.folders.embeddings_folder)
    OUT/mined/    the mining run (fr_data.folders.run_folder)
    OUT/stages/   one stamp per stage: inputs, done, what the stage produced
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from fr_data import runtime
from fr_data.embed.model_spec import resolve_model
from fr_data.embed.run import embed_folder
from fr_data.folders import embeddings_folder as ef
from fr_data.folders import run_folder as rf
from fr_data.folders import synth_folder as sf
from fr_data.folders import training_run_folder as tf
from fr_data.folders.shard_folder import samples_path
from fr_data.ingest.plan import ShardOptions
from fr_data.ingest.sharding import write_shards
from fr_data.ingest.sources import open_source
from fr_data.ingest.verify import verify_shards
from fr_data.io.config import to_dict
from fr_data.io.errors import DataError
from fr_data.io.hashing import file_sha256
from fr_data.mining import MiningConfig, mine
from fr_data.review import build_report
from fr_data.synth import SynthConfig, generate
from fr_train.checkpoints.resume import CheckpointStore, read_state
from fr_train.config import TrainConfig
from fr_train.models import get_model
from fr_train.trainer import run as train_run
from hardmine.pipelines.stamps import begin, is_current, is_started, read_stamp, write_stamp

__all__ = ["StageResult", "Folders", "Stamper", "cpu_seconds", "stamped_config", "non_default",
           "synth_stage", "shard_stage", "train_stage", "final_checkpoint", "trained_weights", "load_backbone", "embed_stage",
           "mine_stage", "report_stage"]

#: Training-config keys that change how fast a run goes, not what it computes: left out of stamps, so
#: that a rerun on another device or with other worker counts reuses finished stages.
EXECUTION_KEYS = {"data": ("num_workers", "pin_memory"), "train": ("device", "cpu_threads", "progress")}


@dataclass
class StageResult:
    """What one stage did: whether it was skipped (output already complete), its wall time, its figures."""

    name: str
    skipped: bool
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Folders:
    """Where the shared stages write inside a pipeline folder (see the module docstring)."""

    out: Path

    @property
    def synth(self) -> Path:
        return self.out / "synth"

    @property
    def shards(self) -> Path:
        return self.out / "shards"

    @property
    def train(self) -> Path:
        return self.out / "train"

    @property
    def emb(self) -> Path:
        return self.out / "emb"

    @property
    def mined(self) -> Path:
        return self.out / "mined"

    def stamp(self, name: str) -> Path:
        """The stamp file of stage (part) ``name``."""
        return self.out / "stages" / f"{name}.json"


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have exited (rendering and
    DataLoader workers): a cost figure that, unlike wall time, does not grow with other jobs' load."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class Stamper:
    """Runs stages of one pipeline folder behind their stamps.

    Attributes:
        folders: the pipeline folder (stamps go to ``folders.stamp(name)``).
        log: where progress lines go.
        tag: the pipeline's name in those lines (``[demo]``, ``[experiment]``).
        timed: record ``seconds``, ``cpu_seconds`` and the load average in each stamp's info.
    """

    folders: Folders
    log: Callable[[str], None] = print
    tag: str = "pipeline"
    timed: bool = False

    def prepare(self, name: str, where: Path, inputs: dict[str, Any]) -> bool:
        """True when stage ``name`` is done for ``inputs`` and ``where`` exists. Otherwise get ``where`` ready:
        kept to resume when the stage started with these inputs, else removed; then mark the stage started."""
        stamp = self.folders.stamp(name)
        if is_current(stamp, inputs) and where.exists():
            return True
        if is_started(stamp, inputs):
            if where.exists():
                self.log(f"[{self.tag}] {name}: resuming in {where}")
        elif where.exists():
            self.log(f"[{self.tag}] {name}: made from other inputs, redoing {where}")
            shutil.rmtree(where) if where.is_dir() else where.unlink()
        begin(stamp, inputs)
        return False

    def finish(self, name: str, inputs: dict[str, Any], info: dict[str, Any]) -> StageResult:
        """Stamp stage ``name`` done with ``info`` (timed: plus the machine's load average)."""
        if self.timed:
            info.setdefault("load_average", [round(v, 1) for v in os.getloadavg()])
        write_stamp(self.folders.stamp(name), inputs, info)
        return StageResult(name, False, info.get("seconds", 0.0), info)

    def run(self, name: str, where: Path, inputs: dict[str, Any] | None,
            work: Callable[[], dict[str, Any]]) -> StageResult:
        """Skip stage ``name`` when done for ``inputs``; else (resume or redo and) run ``work``, then stamp.
        ``inputs`` None: a stage without a stamp, run every time."""
        if inputs is None:
            return StageResult(name, False, info=work())
        if self.prepare(name, where, inputs):
            return StageResult(name, True, info=read_stamp(self.folders.stamp(name))["info"])
        started, cpu = time.perf_counter(), cpu_seconds()
        info = work()
        if self.timed:
            info["seconds"] = round(time.perf_counter() - started, 2)
            info["cpu_seconds"] = round(cpu_seconds() - cpu, 2)  # this process and its finished children
        return self.finish(name, inputs, info)


def stamped_config(config: Any, root: Path) -> dict[str, Any]:
    """A training config as stage inputs: the values that differ from ``TrainConfig()``'s defaults (a key
    added to the code later, at its default, leaves finished stages current; stamps record what a config
    asks for, not the code), without the execution-only keys, and with paths inside the pipeline folder
    ``root`` written as ``$EXP/...`` (a moved or copied folder stays current)."""
    plain = non_default(to_dict(config), to_dict(TrainConfig()))
    for section, keys in EXECUTION_KEYS.items():
        for key in keys:
            plain.get(section, {}).pop(key, None)
    prefix = json.dumps(str(Path(root).resolve()) + os.sep)[1:-1]
    return json.loads(json.dumps(plain, default=str).replace(prefix, "$EXP/"))


def non_default(values: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that differ from ``default`` (nested mappings compared key by key)."""
    out = {}
    for key, value in values.items():
        base = default.get(key, _ABSENT)
        if isinstance(value, dict) and isinstance(base, dict):
            value = non_default(value, base)
            if value:
                out[key] = value
        elif value != base:
            out[key] = value
    return out


_ABSENT = object()


# ------------------------------------------------------------------------------------------ stages
def synth_stage(stamper: Stamper, synth: SynthConfig, where: Path, workers: int) -> StageResult:
    """Render the synthetic data set ``synth`` into ``where``; the result's info is its counts."""
    return stamper.run("synth", where, {"synth": asdict(synth)},
                       lambda: generate(synth, where, workers=workers)["counts"])


def shard_stage(stamper: Stamper, synth_dir: Path, where: Path, per_shard: int, seed: int,
                workers: int) -> StageResult:
    """Cut the synthetic RecordIO set into shards (shuffled by ``seed``, resumable), then verify every shard
    against the manifest.

    Raises:
        DataError: verification found a mismatch (the first one is named).
    """
    def work() -> dict[str, Any]:
        run = write_shards(open_source(synth_dir), where, ShardOptions(per_shard=per_shard, seed=seed),
                           workers=workers)
        problems = verify_shards(where)
        if problems:
            raise DataError(where, "", f"{len(problems)} verification problem(s), first: {problems[0]}")
        return {"shards": len(run.shards), "samples": run.num_samples, "rejected": run.rejected.num_rows,
                "verified": True}

    inputs = {"synth_json": file_sha256(sf.info_path(synth_dir)), "per_shard": per_shard}
    return stamper.run("shard", where, inputs, work)


def final_checkpoint(tcfg: TrainConfig) -> Path | None:
    """The run's latest checkpoint when it reached ``train.max_steps``, else None."""
    latest = CheckpointStore(tf.checkpoints_dir(tcfg.train.output)).latest()
    if latest is None or tcfg.train.max_steps is None:
        return None
    return latest if read_state(latest).step >= tcfg.train.max_steps else None


def train_stage(stamper: Stamper, tcfg: TrainConfig) -> StageResult:
    """Train the backbone of the resolved config ``tcfg`` (its ``data.shards`` and ``train.output`` set)
    with :func:`fr_train.trainer.run`, resuming from the latest checkpoint. The info names the final
    checkpoint, its weights (relative to the pipeline folder) and their sha256, and the last metrics."""
    output = Path(tcfg.train.output)

    def work() -> dict[str, Any]:
        done = final_checkpoint(tcfg) or train_run(tcfg, resume=True).checkpoint
        weights = tf.weights_path(done)
        return {"checkpoint": str(done), **tf.last_metrics(output),
                "weights": str(weights.relative_to(stamper.folders.out)), "sha256": file_sha256(weights)}

    inputs = {"config": stamped_config(tcfg, stamper.folders.out),
              "samples": file_sha256(samples_path(tcfg.data.shards))}
    return stamper.run("train", output, inputs, work)


def trained_weights(folders: Folders) -> Path:
    """The trained backbone's ``model.pt``, as the finished train stage's stamp names it.

    Raises:
        DataError: the train stage has not finished (naming its stamp).
    """
    stamp = read_stamp(folders.stamp("train"))
    if stamp is None or not stamp.get("done"):
        raise DataError(folders.stamp("train"), "", "no trained backbone: the train stage has not finished")
    return folders.out / stamp["info"]["weights"]


def load_backbone(tcfg: TrainConfig, weights: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The backbone of ``tcfg.model`` with ``weights`` and its spec (resolved as ``hardmine embed`` does:
    registry name + checkpoint)."""
    size = tcfg.model.embedding_size
    model = resolve_model(tcfg.model.name, weights,
                          named=lambda name: get_model(name, embedding_size=size, **tcfg.model.options))
    return model, {"model": tcfg.model.name, "checkpoint": str(weights), "checkpoint_sha256": file_sha256(weights),
                   "embedding_size": size}


def embed_stage(stamper: Stamper, tcfg: TrainConfig, weights: Path, shards: Path, where: Path,
                batch_size: int) -> StageResult:
    """Flip-sum embeddings of every shard sample by the backbone of ``tcfg.model`` with ``weights``."""
    def work() -> dict[str, Any]:
        model, spec = load_backbone(tcfg, weights)
        info = embed_folder(model, shards, where, batch_size=batch_size, device=runtime.resolve_device("auto"),
                            workers=1, spec=spec, overwrite=True, progress=False)
        return {"count": info["count"], "dims": info["dims"], "images_per_second": info["images_per_second"]}

    return stamper.run("embed", where, {"weights": file_sha256(weights)}, work)


def mine_stage(stamper: Stamper, mcfg: MiningConfig, emb: Path, shards: Path, attributes: Path | None,
               where: Path) -> StageResult:
    """Mine the embeddings ``emb`` with ``mcfg`` (the shard manifest and ``attributes`` joined); the info
    is the run's counts."""
    def work() -> dict[str, Any]:
        result = mine(emb, where, mcfg, samples=samples_path(shards), attributes=attributes, overwrite=True)
        return result.run["counts"]

    inputs = {"embeddings": file_sha256(emb / ef.RUN_FILE), "config": to_dict(mcfg)}
    return stamper.run("mine", where, inputs, work)


def report_stage(stamper: Stamper, mined: Path, shards: Path, where: Path, workers: int) -> StageResult:
    """The review page of the mining run ``mined`` into ``where``."""
    def work() -> dict[str, Any]:
        result = build_report(mined, shards, where, overwrite=True, workers=workers)
        return {"index": str(result.index), "sections": result.manifest["sections"]}

    return stamper.run("report", where, {"mined": file_sha256(mined / rf.RUN_FILE)}, work)
