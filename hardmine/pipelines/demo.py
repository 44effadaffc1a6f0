"""The end-to-end demo on synthetic faces, a recipe of stages: synth -> shards -> train -> embed -> mine ->
evaluate -> query -> report.

The data, training, embedding, mining and report stages are the shared ones of
:mod:`hardmine.pipelines.stages`, given their inputs from :class:`DemoConfig`; evaluate (against the
synthetic ground truth) and query are the demo's own. Every stage but query runs behind its stamp
(``OUT/stages/NAME.json``): skipped when its output exists and was made from the current inputs, so an
interrupted demo resumes where it stopped (training resumes from its latest checkpoint). ``hardmine demo``
is the command line; :func:`run_demo` the whole pipeline.

Layout of the output folder ``OUT``::

    OUT/synth/       the synthetic set (fr_data.folders.synth_folder)
    OUT/shards/      its shards (fr_data.folders.shard_folder)
    OUT/train/       the training run (fr_data.folders.training_run_folder)
    OUT/emb/         embeddings (fr_data.folders.embeddings_folder)
    OUT/mined/       the mining run (fr_data.folders.run_folder)
    OUT/evaluation.json   verification accuracies and mining quality against the ground truth
    OUT/queries.txt       the DuckDB query results printed by the demo
    OUT/report/      the review page of the mining run (open report/index.html; its path is printed)
    OUT/summary.json      stage timings, counts, accuracies, quality vs the targets (written last)
    OUT/stages/      one stamp per stage (inputs, done, what it produced)
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from fr_data.folders import run_folder as rf
from fr_data.folders import synth_folder
from fr_data.folders.embeddings_folder import read_index
from fr_data.folders.shard_folder import load_listing, samples_path
from fr_data.io.atomic import atomic_write_text
from fr_data.io.config import deep_merge, load_config
from fr_data.io.errors import ConfigError
from fr_data.io.hashing import file_sha256
from fr_data.io.publish import output_lock
from fr_data.io.shipped import config_file, query_file
from fr_data.mining import MiningConfig
from fr_data.mining.groundtruth import TARGETS, format_report, score_run
from fr_data.query.views import format_table, head_rows, open_run, run_query
from fr_data.synth import PACKS, SynthConfig
from fr_train.config import TrainConfig, load_train_config
from fr_train.evaluation.evaluators import BinEvaluator
from hardmine.pipelines import stages
from hardmine.pipelines.stages import Folders, StageResult, Stamper

__all__ = ["DemoConfig", "DEMO_SIZES", "Layout", "Stage", "STAGES", "synth_stage", "shard_stage", "train_stage",
           "embed_stage", "mine_stage", "evaluate_stage", "query_stage", "report_stage", "reconcile", "run_demo",
           "format_summary", "with_overrides", "demo_config"]

#: The demo's small override of ``configs/synth_tiny_cosface.yaml``: a smaller CosFace margin and a
#: larger batch make the tiny backbone converge within a few CPU minutes (ArcFace m=0.3 at batch 32 does
#: not: its 1-NN identity accuracy stays below 0.25 after 400 steps on 300 identities).
DEMO_TRAINING: dict[str, Any] = {"data": {"batch_size": 64}, "objective": {"head": {"m": 0.2}},
                                 "train": {"max_steps": 600, "progress": False}}


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and settings of a demo run.

    Attributes:
        synth: the synthetic data set (training identities, images, defects, held-out packs).
        workers: processes for rendering and sharding.
        per_shard: samples per shard.
        train_config: training YAML (``fr_train.config.TrainConfig``); the demo overrides
            ``data.shards``, ``train.output`` and whatever ``train_overrides`` lists.
        train_overrides: nested mapping merged over the training YAML, e.g.
            ``{"train": {"max_steps": 500}}``.
        embed_batch: images per forward when embedding.
        mining_config: mining YAML (``fr_data.mining.MiningConfig``; default the shipped default config,
            whose thresholds are calibrated from the run); None: the built-in defaults (the same values).
        queries: files of ``manifests/queries`` (or paths) run and printed at the end.
        max_query_rows: rows printed per query.
    """

    synth: SynthConfig = field(default_factory=lambda: SynthConfig(identities=120, images_per_identity=30,
                                                                   holdout_identities=100, pairs=600))
    workers: int = 2
    per_shard: int = 1000
    train_config: str = str(config_file("synth_tiny_cosface.yaml"))
    train_overrides: dict[str, Any] = field(default_factory=lambda: dict(DEMO_TRAINING))
    embed_batch: int = 128
    mining_config: str | None = str(config_file("mining.yaml"))
    queries: tuple[str, ...] = ("merge_candidates.sql", "duplicates_to_drop.sql",
                                "hard_samples_per_pose_bin.sql")
    max_query_rows: int = 12


#: Ready sizes: ``full`` (the README demo, a few minutes on 2 cores) and ``small`` (about a minute).
DEMO_SIZES: dict[str, DemoConfig] = {
    "full": DemoConfig(),
    "small": DemoConfig(synth=SynthConfig(identities=60, images_per_identity=20, holdout_identities=40,
                                          pairs=300),
                        per_shard=500, train_overrides=deep_merge(DEMO_TRAINING, {"train": {"max_steps": 150}})),
}


@dataclass(frozen=True)
class Layout(Folders):
    """Where each stage of a demo run writes (see the module docstring)."""

    @property
    def evaluation(self) -> Path:
        return self.out / "evaluation.json"

    @property
    def queries(self) -> Path:
        return self.out / "queries.txt"

    @property
    def summary(self) -> Path:
        return self.out / "summary.json"

    @property
    def report(self) -> Path:
        return self.out / "report"


#: A demo stage: the demo's config and folder in, what the stage did out.
Stage = Callable[[DemoConfig, Layout, Stamper], StageResult]


# ---------------------------------------------------------------------------------------------- stages
def synth_stage(cfg: DemoConfig, layout: Layout, stamper: Stamper) -> StageResult:
    """Render the synthetic data set (:func:`hardmine.pipelines.stages.synth_stage`).

    Raises:
        ConfigError: the folder holds a data set made with other parameters (a demo folder is one data set).
    """
    info = synth_folder.read_info(layout.synth)
    if info is not None and info.get("parameters") != asdict(cfg.synth):
        raise ConfigError(f"{layout.synth} holds a synthetic set with other parameters "
                          f"({info.get('parameters')}); use a new --out folder")
    return stages.synth_stage(stamper, cfg.synth, layout.synth, cfg.workers)


def shard_stage(cfg: DemoConfig, layout: Layout, stamper: Stamper) -> StageResult:
    """Shards of the synthetic set, verified, shuffled by the synth seed."""
    return stages.shard_stage(stamper, layout.synth, layout.shards, cfg.per_shard, cfg.synth.seed, cfg.workers)


def train_config(cfg: DemoConfig, layout: Layout) -> TrainConfig:
    """The resolved training config: the YAML plus the demo's overrides, shards and output folder."""
    overrides = deep_merge(cfg.train_overrides, {"data": {"shards": str(layout.shards)},
                                             "train": {"output": str(layout.train)}})
    return load_train_config(cfg.train_config, overrides)


def on_terminal() -> bool:
    """True when stderr is a terminal: the training bar is drawn then, and silent in logs and tests
    (like the other stages' tqdm bars)."""
    return sys.stderr.isatty()


def train_stage(cfg: DemoConfig, layout: Layout, stamper: Stamper) -> StageResult:
    """Train the backbone, resuming from the latest checkpoint.

    Raises:
        ConfigError: the training config sets no ``train.max_steps`` (the demo needs a fixed length).
    """
    tcfg = train_config(cfg, layout)
    if tcfg.train.max_steps is None:
        raise ConfigError(f"{cfg.train_config}: the demo needs train.max_steps")
    tcfg.train.progress = on_terminal()  # the longest stage shows its steps, like the other stages' bars
    return stages.train_stage(stamper, tcfg)


def embed_stage(cfg: DemoConfig, layout: Layout, stamper: Stamper) -> StageResult:
    """Flip-sum embeddings of every shard sample by the trained backbone."""
    return stages.embed_stage(stamper, train_config(cfg, layout), stages.trained_weights(layout), layout.shards,
                              layout.emb, cfg.embed_batch)


def mining_config(cfg: DemoConfig) -> MiningConfig:
    """The demo's mining thresholds (``cfg.mining_config``, else the built-in defaults)."""
    return load_config(cfg.mining_config, MiningConfig) if cfg.mining_config else MiningConfig()


def mine_stage(cfg: DemoConfig, layout: Layout, stamper: Stamper) -> StageResult:
    """Mine the embeddings with the synthetic attributes joined."""
    return stages.mine_stage(stamper, mining_config(cfg), layout.emb, layout.shards,
                             synth_folder.attributes_path(layout.synth), layout.mined)


def verification_accuracies(model: nn.Module, synth_dir: Path) -> dict[str, float]:
    """Accuracy (10-fold, flip-sum embeddings) on each synthetic ``.bin`` pack found in ``synth_dir``."""
    accuracies = {}
    for spec in PACKS:
        path = synth_dir / synth_folder.pack_file(spec.name)
        if path.is_file():
            metrics = BinEvaluator(path)(model)
            accuracies[spec.name] = round(metrics[f"bin/{spec.name}/accuracy"], 4)
    return accuracies


def evaluate_stage(cfg: DemoConfig, layout: Layout, stamper: Stamper) -> StageResult:
    """Verification accuracy on the packs and mining quality against the ground truth, into
    ``evaluation.json``; redone when the checkpoint or the mining run changes."""
    weights = stages.trained_weights(layout)
    inputs = {"checkpoint_sha256": file_sha256(weights), "mining_run_sha256": file_sha256(layout.mined / rf.RUN_FILE)}

    def work() -> dict[str, Any]:
        model, _ = stages.load_backbone(train_config(cfg, layout), weights)
        report = score_run(layout.mined, synth_folder.attributes_path(layout.synth), samples_path(layout.shards))
        info = {"inputs": inputs, "verification": verification_accuracies(model, layout.synth),
                "mining_quality": report.as_dict(), "mining_quality_table": format_report(report)}
        atomic_write_text(layout.evaluation, json.dumps(info, indent=2) + "\n")
        return info

    return stamper.run("evaluate", layout.evaluation, inputs, work)


def query_stage(cfg: DemoConfig, layout: Layout, stamper: Stamper) -> StageResult:
    """Run the demo's DuckDB queries over the mining run; results go to ``queries.txt`` (always rerun)."""
    def work() -> dict[str, Any]:
        views = open_run(layout.mined, shards=samples_path(layout.shards),
                         attributes=synth_folder.attributes_path(layout.synth))
        blocks, counts = [], {}
        for name in cfg.queries:
            path = Path(name) if Path(name).is_absolute() else query_file(name)
            table, total = head_rows(run_query(views, path.read_text()), cfg.max_query_rows)
            counts[path.stem] = total
            blocks.append(f"-- {path.name}\n{format_table(table, total)}")
        views.con.close()
        atomic_write_text(layout.queries, "\n\n".join(blocks) + "\n")
        return {"rows": counts}

    return stamper.run("query", layout.queries, None, work)


def report_stage(cfg: DemoConfig, layout: Layout, stamper: Stamper) -> StageResult:
    """The review page of the mining run into ``OUT/report``."""
    return stages.report_stage(stamper, layout.mined, layout.shards, layout.report, cfg.workers)


#: The recipe: the demo's stages, in order.
STAGES: tuple[Stage, ...] = (synth_stage, shard_stage, train_stage, embed_stage, mine_stage, evaluate_stage,
                             query_stage, report_stage)


# ------------------------------------------------------------------------------------------- summary
def reconcile(layout: Layout) -> list[str]:
    """Cross-check the stage outputs: every image of the synthetic set is a shard sample, an embedding
    row and a mined row (empty list when everything adds up)."""
    problems = []
    images = synth_folder.read_info(layout.synth)["counts"]["num_images"]
    counts = {"shard samples": load_listing(layout.shards)["num_samples"],
              "embedding rows": read_index(layout.emb).num_rows,
              "mined rows": rf.read_run_info(layout.mined)["counts"]["samples_rows"]}
    for what, n in counts.items():
        if n != images:
            problems.append(f"{what}: {n} != {images} synthetic images")
    if not rf.read_run_info(layout.mined)["counts"].get("reconciled", False):
        problems.append("mining run.json: counts not reconciled")
    return problems


def build_summary(results: list[StageResult], layout: Layout, total_seconds: float) -> dict[str, Any]:
    """The ``summary.json`` content."""
    by_name = {r.name: r for r in results}
    evaluation = by_name["evaluate"].info
    quality = evaluation["mining_quality"]
    return {
        "out": str(layout.out),
        "total_seconds": round(total_seconds, 1),
        "stages": {r.name: {"skipped": r.skipped, "seconds": round(r.seconds, 1)} for r in results},
        "counts": {name: by_name[name].info for name in ("synth", "shard", "train", "embed")},
        "mining_counts": {k: v for k, v in by_name["mine"].info.items() if k != "first_invalid_rows"},
        "verification_accuracy": evaluation["verification"],
        "mining_quality": quality["metrics"],
        "targets": TARGETS,
        "targets_met": quality["targets_met"],
        "query_rows": by_name["query"].info["rows"],
        "report": by_name["report"].info["index"],
        "reconciliation_problems": reconcile(layout),
    }


def format_summary(summary: dict[str, Any], quality_table: str) -> str:
    """Human-readable summary: timings, counts, accuracies and the quality table."""
    lines = ["", "== hardmine demo summary ==",
             f"output: {summary['out']}  total {summary['total_seconds']} s"]
    for name, stage in summary["stages"].items():
        took = "skipped (already complete)" if stage["skipped"] else f"{stage['seconds']:.1f} s"
        lines.append(f"  {name:<9} {took}")
    c = summary["counts"]
    lines.append(f"images {c['synth']['num_images']} ({c['synth']['num_classes']} labels, "
                 f"{c['synth']['mislabeled']} mislabelled, {c['synth']['near_duplicates']} near-duplicates, "
                 f"{c['synth']['split_identities']} split identities); shards {c['shard']['shards']}; "
                 f"training steps {c['train']['steps']} (final loss {c['train']['final_loss']})")
    acc = ", ".join(f"{k} {v:.3f}" for k, v in summary["verification_accuracy"].items())
    lines.append(f"verification accuracy: {acc}")
    lines.append("mining quality against the synthetic ground truth:")
    lines.append(quality_table)
    problems = summary["reconciliation_problems"]
    lines.append("counts reconcile across stages" if not problems else f"RECONCILIATION PROBLEMS: {problems}")
    lines.append(f"review page: {summary['report']}")
    return "\n".join(lines)


def run_demo(cfg: DemoConfig, out: str | os.PathLike, *,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every stage into ``out``; write and return ``summary.json``'s content."""
    with output_lock(out, "demo folder"):  # one run at a time (a rerun resumes)
        layout = Layout(Path(out))
        layout.out.mkdir(parents=True, exist_ok=True)
        stamper = Stamper(layout, log=log, tag="demo")
        started, results = time.perf_counter(), []
        for stage in STAGES:
            name = stage.__name__.removesuffix("_stage")
            log(f"[demo] {name} ...")
            t0 = time.perf_counter()
            result = stage(cfg, layout, stamper)
            result.seconds = 0.0 if result.skipped else time.perf_counter() - t0
            log(f"[demo] {name}: {'already complete, skipped' if result.skipped else f'{result.seconds:.1f} s'}")
            results.append(result)
        summary = build_summary(results, layout, time.perf_counter() - started)
        atomic_write_text(layout.summary, json.dumps(summary, indent=2, default=str) + "\n")
        log(layout.queries.read_text())
        log(format_summary(summary, results[STAGES.index(evaluate_stage)].info["mining_quality_table"]))
        return summary


def with_overrides(cfg: DemoConfig, **changes: Any) -> DemoConfig:
    """``cfg`` with fields replaced; ``train_overrides`` are deep-merged rather than replaced."""
    if "train_overrides" in changes:
        changes["train_overrides"] = deep_merge(cfg.train_overrides, changes["train_overrides"])
    return replace(cfg, **changes)


def demo_config(size: str = "full", *, seed: int | None = None, steps: int | None = None,
                identities: int | None = None, images_per_identity: int | None = None,
                **fields: Any) -> DemoConfig:
    """A ready size of :data:`DEMO_SIZES` with the command-line changes applied (None = keep).

    ``seed`` seeds the synthetic data set, the shard shuffle and the training data order together
    (another seed is another data set); ``fields`` replace :class:`DemoConfig` fields, except
    ``train_overrides``, which is deep-merged over the size's (as :func:`with_overrides` does), with the
    ``steps`` and ``seed`` given here merged over it.
    """
    cfg = DEMO_SIZES[size]
    synth = {"seed": seed, "identities": identities, "images_per_identity": images_per_identity}
    synth = {k: v for k, v in synth.items() if v is not None}
    changes: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if synth:
        changes["synth"] = replace(cfg.synth, **synth)
    train: dict[str, Any] = {}
    if steps is not None:
        train["train"] = {"max_steps": steps}
    if seed is not None:
        train["data"] = {"seed": seed}
    if train:  # over the caller's own train_overrides, not instead of them
        changes["train_overrides"] = deep_merge(changes.get("train_overrides") or {}, train)
    return with_overrides(cfg, **changes)
