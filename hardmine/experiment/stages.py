"""The experiment's stages, in order, each skipped on a rerun when its outputs exist and its inputs are
unchanged (``stage.json`` stamps, :mod:`hardmine.pipelines.stamps`); a stage whose inputs changed is
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

A recipe: the data, pretraining, embedding and mining stages are the shared ones of
:mod:`hardmine.pipelines.stages` (same stamps as the demo's), given their inputs from the
:class:`~hardmine.experiment.config.ExperimentConfig`; packs, fine-tuning and evaluation are the experiment's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fr_data.folders import experiment_folder as folder
from fr_data.folders import run_folder as rf
from fr_data.folders import synth_folder
from fr_data.io.config import deep_merge, load_config
from fr_data.io.hashing import file_sha256
from fr_data.mining import MiningConfig
from fr_data.synth import SynthConfig, generate_packs
from fr_train.config import TrainConfig, load_train_config
from hardmine.experiment.arms import ArmPlan, plan_arm
from hardmine.experiment.config import ExperimentConfig
from hardmine.experiment.jobs import finetune_job, run_jobs, score_job
from hardmine.experiment.scoring import PackScores, load_scores, pack_metrics, save_scores
from hardmine.pipelines import stages
from hardmine.pipelines.stages import Folders, StageResult, Stamper, cpu_seconds, stamped_config
from hardmine.pipelines.stamps import is_current, read_stamp, write_stamp

__all__ = ["SPLITS", "Layout", "Context", "STAGES", "run_stages", "model_name"]

SPLITS = ("validation", "test")
#: Name of the pretrained backbone in ``EXP/scores``.
PRETRAINED = "pretrained"
#: Images per forward when embedding the training set.
EMBED_BATCH = 128


@dataclass(frozen=True)
class Layout(Folders):
    """Where every stage writes (see the module docstring)."""

    def packs(self, split: str) -> Path:
        return self.out / "packs" / split

    def run(self, arm: str, seed: int) -> Path:
        return self.out / "runs" / arm / f"seed-{seed}"

    def scores(self, split: str, model: str) -> Path:
        return self.out / "scores" / split / f"{model}.npz"


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


    @property
    def stamper(self) -> Stamper:
        """The stamps of this experiment folder (timed: each records wall and CPU seconds)."""
        return Stamper(self.layout, log=self.log, tag="experiment", timed=True)


# ----------------------------------------------------------------------------------------- helpers
def pretrain_config(ctx: Context) -> TrainConfig:
    """The resolved pretraining config: the experiment's YAML and overrides, its shards and output folder."""
    cfg = ctx.cfg
    overrides = deep_merge(cfg.pretrain.overrides, {"data": {"shards": str(ctx.layout.shards)},
                                                    "train": {"device": ctx.device, "output": str(ctx.layout.train)}})
    return load_train_config(str(cfg.path(cfg.pretrain.config)), overrides)


def _pretrained(ctx: Context) -> Path:
    """The pretrained backbone's ``model.pt`` (the train stage's output)."""
    return stages.trained_weights(ctx.layout)


# ------------------------------------------------------------------------------------------ stages
def synth_stage(ctx: Context) -> StageResult:
    """The training set (no packs)."""
    synth = SynthConfig(**asdict(ctx.cfg.synth), holdout_identities=0, pairs=0)
    return stages.synth_stage(ctx.stamper, synth, ctx.layout.synth, ctx.workers)


def packs_stage(ctx: Context) -> StageResult:
    """Validation and test packs from their own synth seeds (held-out people)."""
    results = []
    for split in SPLITS:
        seed = ctx.cfg.packs.validation_seed if split == "validation" else ctx.cfg.packs.test_seed
        scfg = SynthConfig(identities=ctx.cfg.synth.identities, images_per_identity=1, seed=seed,
                           holdout_identities=ctx.cfg.packs.identities, pairs=ctx.cfg.packs.pairs)
        work = lambda: {"packs": generate_packs(scfg, ctx.layout.packs(split), ctx.workers)["sha256"]}  # noqa: E731
        results.append(ctx.stamper.run(f"packs-{split}", ctx.layout.packs(split), {"synth": asdict(scfg)}, work))
    return _merge_results("packs", results)


def shard_stage(ctx: Context) -> StageResult:
    """Shards of the training set, verified, shuffled by the training set's seed."""
    return stages.shard_stage(ctx.stamper, ctx.layout.synth, ctx.layout.shards, ctx.cfg.per_shard,
                              ctx.cfg.synth.seed, ctx.workers)


def train_stage(ctx: Context) -> StageResult:
    """Pretrain the backbone every arm starts from (resumes when interrupted)."""
    return stages.train_stage(ctx.stamper, pretrain_config(ctx))


def embed_stage(ctx: Context) -> StageResult:
    """Embeddings of the training set by the pretrained backbone."""
    return stages.embed_stage(ctx.stamper, pretrain_config(ctx), _pretrained(ctx), ctx.layout.shards,
                              ctx.layout.emb, EMBED_BATCH)


def mine_stage(ctx: Context) -> StageResult:
    """The mining run over those embeddings, attributes joined."""
    mcfg = load_config(str(ctx.cfg.path(ctx.cfg.mining)), MiningConfig)
    return stages.mine_stage(ctx.stamper, mcfg, ctx.layout.emb, ctx.layout.shards,
                             synth_folder.attributes_path(ctx.layout.synth), ctx.layout.mined)


def plan(ctx: Context, arm: str, seed: int) -> ArmPlan:
    """The fine-tuning run of ``arm`` at ``seed`` in this experiment."""
    paths = {"shards": ctx.layout.shards, "mined": ctx.layout.mined, "weights": _pretrained(ctx),
             "output": ctx.layout.run(arm, seed)}
    return plan_arm(ctx.cfg, arm, seed, paths, ctx.device)


def finetune_stage(ctx: Context) -> StageResult:
    """Fine-tune every arm x seed from the pretrained backbone at equal compute (resumable), ``ctx.workers``
    runs side by side."""
    weights_sha, mined_sha = file_sha256(_pretrained(ctx)), file_sha256(ctx.layout.mined / rf.RUN_FILE)
    results, todo = [], []
    for seed in ctx.seeds:
        for arm in ctx.arms:
            run, name = plan(ctx, arm, seed), f"finetune-{model_name(arm, seed)}"
            inputs = {"config": stamped_config(run.config, ctx.layout.out), "weights": weights_sha,
                      "mined": mined_sha if run.config.data.run else None}
            if ctx.stamper.prepare(name, ctx.layout.run(arm, seed), inputs):
                ctx.runs[(arm, seed)] = read_stamp(ctx.layout.stamp(name))["info"]
                results.append(StageResult(name, True, info=ctx.runs[(arm, seed)]))
            else:
                ctx.log(f"[experiment] fine-tune {arm} seed {seed}: {run.steps} steps x {run.images_per_step} images")
                todo.append((run, name, inputs))
    for index, info in run_jobs(finetune_job, [(run, ctx.layout.out) for run, _, _ in todo], ctx.workers):
        run, name, inputs = todo[index]
        info["seconds"] = info["train_seconds"]
        results.append(ctx.stamper.finish(name, inputs, info))
        ctx.runs[(run.arm, run.seed)] = info
        ctx.log(f"[experiment] fine-tuned {run.arm} seed {run.seed} in {info['seconds']:.0f} s")
    return _merge_results("finetune", results)


def evaluate_stage(ctx: Context) -> StageResult:
    """Score the pretrained and every fine-tuned backbone on the packs of each split; write the results."""
    models = {PRETRAINED: _pretrained(ctx)}
    models.update({model_name(arm, seed): ctx.layout.out / ctx.runs[(arm, seed)]["checkpoint"]
                   for seed in ctx.seeds for arm in ctx.arms})
    results = [_score_split(ctx, split, models) for split in ctx.splits]
    for split in ctx.splits:
        folder.write_results(ctx.layout.out, result_rows(ctx, split), split)
    return _merge_results("evaluate", results)


def _score_split(ctx: Context, split: str, models: dict[str, Path]) -> StageResult:
    """Score the models whose scores of ``split`` are missing or stale, in ``ctx.workers`` groups."""
    packs_sha = read_stamp(ctx.layout.stamp(f"packs-{split}"))["info"]["packs"]
    attack_cfg = ctx.cfg.evaluation.attack
    attack = attack_cfg if attack_cfg.eps and split in attack_cfg.splits else None
    attacked = [name for name in models if name != PRETRAINED]  # the arms; the starting point is not judged
    inputs = {name: {"weights": file_sha256(path), "packs": packs_sha, "batch": ctx.cfg.evaluation.batch_size,
                     **({"attack": asdict(attack)} if attack is not None and name in attacked else {})}
              for name, path in models.items()}
    todo = [name for name in models if not is_current(ctx.layout.stamp(f"scores-{split}-{name}"), inputs[name])]
    if not todo:
        return StageResult(f"evaluate {split}", True)
    ctx.log(f"[experiment] scoring {len(todo)} backbone(s) on the {split} packs")
    groups = [todo[i::max(1, ctx.workers)] for i in range(max(1, ctx.workers))]
    jobs = [(ctx.layout.packs(split), {n: models[n] for n in group}, ctx.cfg.evaluation.batch_size, ctx.device,
             attack, attacked) for group in groups if group]
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
