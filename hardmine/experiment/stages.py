"""The experiment's stages, in order, each skipped on a rerun when its outputs exist and its inputs are
unchanged (``stage.json`` stamps, :mod:`hardmine.experiment.stamps`); a stage whose inputs changed is
redone from scratch, and so is every stage after it whose inputs it changes.

Layout of ``EXP`` (besides the files of :mod:`fr_data.folders.experiment_folder`)::

    EXP/synth/                     the synthetic training set (no packs)
    EXP/packs/{validation,test}/   synth_easy/pose/lowres.bin of held-out people (other synth seeds)
    EXP/shards/                    shards of the training set
    EXP/train/                     the pretrained backbone's run (every arm starts from it)
    EXP/emb/, EXP/mined/           embeddings by the pretrained backbone, the mining run
    EXP/runs/ARM/seed-S/           fine-tuning runs (checkpoints/step-*/model.pt + config.yaml)
    EXP/scores/SPLIT/MODEL.npz     pair scores of a backbone (``pretrained`` or ``ARM.seed-S``) per pack
    EXP/stages/NAME.json           stage stamps: inputs, done, what the stage produced

The data, pretraining, embedding and mining stages are the demo's (:mod:`hardmine.pipelines.demo`) behind
stamps.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fr_data.folders import experiment_folder as folder
from fr_data.io.config import deep_merge, to_dict
from fr_data.io.errors import DataError
from fr_data.io.hashing import file_sha256
from fr_data.synth import SynthConfig, generate_packs
from fr_train.config import TrainConfig
from hardmine.pipelines import demo
from hardmine.pipelines.demo import StageResult
from hardmine.experiment.arms import ArmPlan, plan_arm
from hardmine.experiment.config import ExperimentConfig
from hardmine.experiment.jobs import cpu_seconds, finetune_job, run_jobs, score_job
from hardmine.experiment.scoring import PackScores, load_scores, pack_metrics, save_scores
from hardmine.experiment.stamps import begin, is_current, is_started, read_stamp, write_stamp

__all__ = ["SPLITS", "Layout", "Context", "StageResult", "STAGES", "run_stages", "model_name"]

SPLITS = ("validation", "test")
#: Training-config keys that change how fast a run goes, not what it computes: left out of stamps, so
#: that a rerun on another device or with other worker counts reuses finished stages.
EXECUTION_KEYS = {"data": ("num_workers", "pin_memory"), "train": ("device", "cpu_threads", "progress")}


@dataclass(frozen=True)
class Layout:
    """Where every stage writes (see the module docstring)."""

    out: Path

    @property
    def demo(self) -> demo.Layout:
        """The demo's layout of the same folder (synth, shards, train, emb, mined)."""
        return demo.Layout(self.out)

    def packs(self, split: str) -> Path:
        return self.out / "packs" / split

    def run(self, arm: str, seed: int) -> Path:
        return self.out / "runs" / arm / f"seed-{seed}"

    def scores(self, split: str, model: str) -> Path:
        return self.out / "scores" / split / f"{model}.npz"

    def stamp(self, name: str) -> Path:
        """The stamp file of stage (part) ``name``."""
        return self.out / "stages" / f"{name}.json"


def model_name(arm: str, seed: int) -> str:
    """Name of a fine-tuned backbone in ``EXP/scores``."""
    return f"{arm}.seed-{seed}"


@dataclass
class Context:
    """One invocation: config, folder, the arms and seeds asked for, and execution settings."""

    cfg: ExperimentConfig
    layout: Layout
    arms: list[str]
    seeds: list[int]
    device: str = "cpu"
    workers: int = 2
    splits: tuple[str, ...] = SPLITS
    log: Callable[[str], None] = print
    runs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- helpers
def demo_config(ctx: Context) -> demo.DemoConfig:
    """The demo settings that make the shared stages produce this experiment's data and backbone."""
    cfg = ctx.cfg
    synth = SynthConfig(**asdict(cfg.synth), holdout_identities=0, pairs=0)
    overrides = deep_merge(cfg.pretrain.overrides, {"train": {"device": ctx.device}})
    return demo.DemoConfig(synth=synth, workers=ctx.workers, per_shard=cfg.per_shard,
                           train_config=str(cfg.path(cfg.pretrain.config)), train_overrides=overrides,
                           mining_config=str(cfg.path(cfg.mining)))


def stamped_config(config: Any, root: Path) -> dict[str, Any]:
    """A training config as stage inputs: the values that differ from ``TrainConfig()``'s defaults (a key
    added to the code later, at its default, leaves finished stages current; stamps record what a config
    asks for, not the code), without the execution-only keys, and with paths inside the experiment folder
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


def _prepare(ctx: Context, name: str, where: Path, inputs: dict[str, Any]) -> bool:
    """True when stage ``name`` is done for ``inputs``. Otherwise get ``where`` ready: kept to resume when the
    stage started with these inputs, else removed; then mark the stage started."""
    stamp = ctx.layout.stamp(name)
    if is_current(stamp, inputs):
        return True
    if is_started(stamp, inputs):
        ctx.log(f"[experiment] {name}: resuming in {where}")
    elif where.exists():
        ctx.log(f"[experiment] {name}: made from other inputs, redoing {where}")
        shutil.rmtree(where)
    begin(stamp, inputs)
    return False


def _finish(ctx: Context, name: str, inputs: dict[str, Any], info: dict[str, Any]) -> StageResult:
    """Stamp stage ``name`` done; ``info`` gets the machine's load average (timing context)."""
    info.setdefault("load_average", [round(v, 1) for v in os.getloadavg()])
    write_stamp(ctx.layout.stamp(name), inputs, info)
    return StageResult(name, False, info.get("seconds", 0.0), info)


def _stamped_stage(ctx: Context, name: str, where: Path, inputs: dict[str, Any],
                   work: Callable[[], dict[str, Any]]) -> StageResult:
    """Skip stage ``name`` when done for ``inputs``; else (resume or redo and) run ``work``, then stamp."""
    if _prepare(ctx, name, where, inputs):
        return StageResult(name, True, info=read_stamp(ctx.layout.stamp(name))["info"])
    started, cpu = time.perf_counter(), cpu_seconds()
    info = work()
    info["seconds"] = round(time.perf_counter() - started, 2)
    info["cpu_seconds"] = round(cpu_seconds() - cpu, 2)  # this process and its finished children
    return _finish(ctx, name, inputs, info)


def _pretrained(ctx: Context) -> Path:
    """The pretrained backbone's ``model.pt`` (the train stage's output)."""
    stamp = read_stamp(ctx.layout.stamp("train"))
    if stamp is None or not stamp.get("done"):
        raise DataError(ctx.layout.stamp("train"), "", "no pretrained backbone: the train stage has not finished")
    return ctx.layout.out / stamp["info"]["weights"]


# ------------------------------------------------------------------------------------------ stages
def synth_stage(ctx: Context) -> StageResult:
    """The training set (the demo's synth stage, without packs)."""
    dcfg = demo_config(ctx)
    return _stamped_stage(ctx, "synth", ctx.layout.demo.synth, {"synth": asdict(dcfg.synth)},
                          lambda: demo.synth_stage(dcfg, ctx.layout.demo).info)


def packs_stage(ctx: Context) -> StageResult:
    """Validation and test packs from their own synth seeds (held-out people)."""
    results = []
    for split in SPLITS:
        seed = ctx.cfg.packs.validation_seed if split == "validation" else ctx.cfg.packs.test_seed
        scfg = SynthConfig(identities=ctx.cfg.synth.identities, images_per_identity=1, seed=seed,
                           holdout_identities=ctx.cfg.packs.identities, pairs=ctx.cfg.packs.pairs)
        work = lambda: {"packs": generate_packs(scfg, ctx.layout.packs(split), ctx.workers)["sha256"]}  # noqa: E731
        results.append(_stamped_stage(ctx, f"packs-{split}", ctx.layout.packs(split), {"synth": asdict(scfg)}, work))
    return _merge_results("packs", results)


def shard_stage(ctx: Context) -> StageResult:
    """Shards of the training set, verified (the demo's shard stage)."""
    inputs = {"synth_json": file_sha256(ctx.layout.demo.synth / "synth.json"), "per_shard": ctx.cfg.per_shard}
    return _stamped_stage(ctx, "shard", ctx.layout.demo.shards, inputs,
                          lambda: demo.shard_stage(demo_config(ctx), ctx.layout.demo).info)


def train_stage(ctx: Context) -> StageResult:
    """Pretrain the backbone every arm starts from (the demo's train stage; resumes when interrupted)."""
    dcfg = demo_config(ctx)
    tcfg = demo.train_config(dcfg, ctx.layout.demo)
    inputs = {"config": stamped_config(tcfg, ctx.layout.out), "samples": file_sha256(ctx.layout.demo.shards / "samples.parquet")}
    where = ctx.layout.demo.train

    def work() -> dict[str, Any]:
        info = demo.train_stage(dcfg, ctx.layout.demo).info
        weights = Path(info["checkpoint"]) / "model.pt"
        return {**info, "weights": str(weights.relative_to(ctx.layout.out)), "sha256": file_sha256(weights)}

    return _stamped_stage(ctx, "train", where, inputs, work)


def embed_stage(ctx: Context) -> StageResult:
    """Embeddings of the training set by the pretrained backbone (the demo's embed stage)."""
    inputs = {"weights": file_sha256(_pretrained(ctx))}
    return _stamped_stage(ctx, "embed", ctx.layout.demo.emb, inputs,
                          lambda: demo.embed_stage(demo_config(ctx), ctx.layout.demo).info)


def mine_stage(ctx: Context) -> StageResult:
    """The mining run over those embeddings, attributes joined (the demo's mine stage)."""
    dcfg = demo_config(ctx)
    inputs = {"embeddings": file_sha256(ctx.layout.demo.emb / "run.json"),
              "config": demo._as_plain(demo.mining_config(dcfg))}
    return _stamped_stage(ctx, "mine", ctx.layout.demo.mined, inputs,
                          lambda: demo.mine_stage(dcfg, ctx.layout.demo).info)


def plan(ctx: Context, arm: str, seed: int) -> ArmPlan:
    """The fine-tuning run of ``arm`` at ``seed`` in this experiment."""
    paths = {"shards": ctx.layout.demo.shards, "mined": ctx.layout.demo.mined, "weights": _pretrained(ctx),
             "output": ctx.layout.run(arm, seed)}
    return plan_arm(ctx.cfg, arm, seed, paths, ctx.device)


def finetune_stage(ctx: Context) -> StageResult:
    """Fine-tune every arm x seed from the pretrained backbone at equal compute (resumable), ``ctx.workers``
    runs side by side."""
    weights_sha, mined_sha = file_sha256(_pretrained(ctx)), file_sha256(ctx.layout.demo.mined / "run.json")
    results, todo = [], []
    for seed in ctx.seeds:
        for arm in ctx.arms:
            run, name = plan(ctx, arm, seed), f"finetune-{model_name(arm, seed)}"
            inputs = {"config": stamped_config(run.config, ctx.layout.out), "weights": weights_sha,
                      "mined": mined_sha if run.config.data.run else None}
            if _prepare(ctx, name, ctx.layout.run(arm, seed), inputs):
                ctx.runs[(arm, seed)] = read_stamp(ctx.layout.stamp(name))["info"]
                results.append(StageResult(name, True, info=ctx.runs[(arm, seed)]))
            else:
                ctx.log(f"[experiment] fine-tune {arm} seed {seed}: {run.steps} steps x {run.images_per_step} images")
                todo.append((run, name, inputs))
    for index, info in run_jobs(finetune_job, [(run, ctx.layout.out) for run, _, _ in todo], ctx.workers):
        run, name, inputs = todo[index]
        info["seconds"] = info["train_seconds"]
        results.append(_finish(ctx, name, inputs, info))
        ctx.runs[(run.arm, run.seed)] = info
        ctx.log(f"[experiment] fine-tuned {run.arm} seed {run.seed} in {info['seconds']:.0f} s")
    return _merge_results("finetune", results)


def evaluate_stage(ctx: Context) -> StageResult:
    """Score the pretrained and every fine-tuned backbone on the packs of each split; write the results."""
    models = {"pretrained": _pretrained(ctx)}
    models.update({model_name(arm, seed): ctx.layout.out / ctx.runs[(arm, seed)]["checkpoint"]
                   for seed in ctx.seeds for arm in ctx.arms})
    results = [_score_split(ctx, split, models) for split in ctx.splits]
    for split in ctx.splits:
        folder.write_results(ctx.layout.out, result_rows(ctx, split), split)
    return _merge_results("evaluate", results)


def _score_split(ctx: Context, split: str, models: dict[str, Path]) -> StageResult:
    """Score the models whose scores of ``split`` are missing or stale, in ``ctx.workers`` groups."""
    packs_sha = read_stamp(ctx.layout.stamp(f"packs-{split}"))["info"]["packs"]
    inputs = {name: {"weights": file_sha256(path), "packs": packs_sha, "batch": ctx.cfg.evaluation.batch_size}
              for name, path in models.items()}
    todo = [name for name in models if not is_current(ctx.layout.stamp(f"scores-{split}-{name}"), inputs[name])]
    if not todo:
        return StageResult(f"evaluate {split}", True)
    ctx.log(f"[experiment] scoring {len(todo)} backbone(s) on the {split} packs")
    groups = [todo[i::max(1, ctx.workers)] for i in range(max(1, ctx.workers))]
    jobs = [(ctx.layout.packs(split), {n: models[n] for n in group}, ctx.cfg.evaluation.batch_size, ctx.device)
            for group in groups if group]
    for _, scores in run_jobs(score_job, jobs, ctx.workers):
        for name, packs in scores.items():
            save_scores(ctx.layout.scores(split, name), packs)
            write_stamp(ctx.layout.stamp(f"scores-{split}-{name}"), inputs[name],
                        {pack: pack_metrics(s, ctx.cfg.evaluation.folds) for pack, s in packs.items()})
    return StageResult(f"evaluate {split}", False, info={"scored": todo})


def split_scores(ctx: Context, split: str, model: str) -> dict[str, PackScores]:
    """The stored pair scores of ``model`` on the packs of ``split``."""
    return load_scores(ctx.layout.scores(split, model))


def result_rows(ctx: Context, split: str) -> list[dict[str, Any]]:
    """One row per (arm, seed, pack) of ``split`` (:data:`fr_data.folders.experiment_folder.RESULTS_SCHEMA`)."""
    rows = []
    for seed in ctx.seeds:
        for arm in ctx.arms:
            run = ctx.runs[(arm, seed)]
            metrics = read_stamp(ctx.layout.stamp(f"scores-{split}-{model_name(arm, seed)}"))["info"]
            for pack, values in metrics.items():
                rows.append({"arm": arm, "seed": seed, "pack": pack, **values,
                             "images_seen": run["images_seen"], "train_seconds": run["train_seconds"],
                             "checkpoint": run["checkpoint"]})
    return rows


def _merge_results(name: str, results: list[StageResult]) -> StageResult:
    """One result for a stage made of parts (skipped only when every part was); its time is the stage's
    wall time, taken by :func:`run_stages` (parts may run side by side, so their times do not add up)."""
    return StageResult(name, all(r.skipped for r in results),
                       info={r.name: r.info for r in results if not r.skipped})


#: The pipeline before the report, in order.
STAGES: tuple[Callable[[Context], StageResult], ...] = (synth_stage, packs_stage, shard_stage, train_stage,
                                                        embed_stage, mine_stage, finetune_stage, evaluate_stage)


def run_stages(ctx: Context) -> list[StageResult]:
    """Run (or skip) every stage in order, logging each one's outcome and time."""
    results = []
    for stage in STAGES:
        name = stage.__name__.removesuffix("_stage")
        ctx.log(f"[experiment] {name} ...")
        cpu, started = cpu_seconds(), time.perf_counter()
        result = stage(ctx)
        if not result.skipped:  # the stage's wall time (its parts may have run side by side)
            result.seconds = time.perf_counter() - started
        result.info["stage_cpu_seconds"] = round(cpu_seconds() - cpu, 1)
        ctx.log(f"[experiment] {name}: " + ("already complete, skipped" if result.skipped
                                          else f"{result.seconds:.1f} s"))
        results.append(result)
    return results
