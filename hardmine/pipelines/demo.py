"""The end-to-end demo on synthetic faces: synth -> shards -> train -> embed -> mine -> evaluate -> query
-> report.

Every stage calls the library behind the corresponding tool (``fr_data.synth``, ``fr_data.ingest.sharding``,
``fr_train.trainer``, ``fr_data.embed.run``, ``fr_data.mining``, ``fr_train.evaluation.evaluators``,
``fr_data.mining.groundtruth``, ``fr_data.query.views``, ``fr_data.review``) and skips itself when its
output already exists, is complete and was made from the current inputs, so an interrupted demo resumes
where it stopped (training resumes from its latest checkpoint). ``hardmine demo`` is the command line;
:func:`run_demo` the whole pipeline.

Layout of the output folder ``OUT``::

    OUT/synth/       train.rec/.idx, property, attributes.parquet, synth_*.bin, synth.json
    OUT/shards/      shard-*.tar, samples.parquet, shards.json
    OUT/train/       config.yaml, metrics.jsonl, checkpoints/step-*/model.pt
    OUT/emb/         embeddings.npy, index.parquet, run.json
    OUT/mined/       samples/classes/pairs/groups/sweep.parquet, run.json
    OUT/evaluation.json   verification accuracies and mining quality against the ground truth
    OUT/queries.txt       the DuckDB query results printed by the demo
    OUT/report/      the review page of the mining run (open report/index.html; its path is printed)
    OUT/summary.json      stage timings, counts, accuracies, quality vs the targets (written last)
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

from fr_data import runtime
from fr_data.embed.model_spec import resolve_model
from fr_data.embed.run import embed_folder
from fr_data.folders import embeddings_folder as ef
from fr_data.folders import run_folder as rf
from fr_data.folders.embeddings_folder import read_index
from fr_data.folders.report_folder import read_manifest
from fr_data.folders.shard_folder import load_listing, samples_path
from fr_data.ingest.plan import ShardOptions
from fr_data.ingest.sharding import write_shards
from fr_data.ingest.sources import open_source
from fr_data.ingest.verify import verify_shards
from fr_data.io.atomic import atomic_write_text
from fr_data.io.config import load_config, to_dict
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.hashing import file_sha256
from fr_data.io.publish import output_lock
from fr_data.mining import MiningConfig, mine
from fr_data.mining.groundtruth import TARGETS, format_report, score_run
from fr_data.query.views import format_table, head_rows, open_run, run_query
from fr_data.review import build_report
from fr_data.synth import PACKS, SynthConfig, generate
from fr_train.checkpoints.resume import CheckpointStore, read_state
from fr_train.config import TrainConfig, load_train_config
from fr_train.evaluation.evaluators import BinEvaluator
from fr_train.models import get_model
from fr_train.trainer import run as train_run
from fr_data.io.shipped import config_file, query_file

__all__ = ["DemoConfig", "DEMO_SIZES", "Layout", "StageResult", "Stage", "STAGES", "synth_stage",
           "shard_stage", "train_stage", "embed_stage", "mine_stage", "evaluate_stage", "query_stage",
           "report_stage", "reconcile", "run_demo", "format_summary", "with_overrides", "demo_config"]



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
        mining_config: mining YAML (``fr_data.mining.MiningConfig``); None: built-in defaults.
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
    mining_config: str | None = str(config_file("mining_demo.yaml"))
    queries: tuple[str, ...] = ("merge_candidates.sql", "duplicates_to_drop.sql",
                                "hard_samples_per_pose_bin.sql")
    max_query_rows: int = 12


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of two nested mappings (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if nested else value
    return out


#: Ready sizes: ``full`` (the README demo, a few minutes on 2 cores) and ``small`` (about a minute).
DEMO_SIZES: dict[str, DemoConfig] = {
    "full": DemoConfig(),
    "small": DemoConfig(synth=SynthConfig(identities=60, images_per_identity=20, holdout_identities=40,
                                          pairs=300),
                        per_shard=500, train_overrides=_merge(DEMO_TRAINING, {"train": {"max_steps": 150}})),
}


@dataclass(frozen=True)
class Layout:
    """Where each stage of a demo run writes (see the module docstring)."""

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


@dataclass
class StageResult:
    """What one stage did: whether it was skipped (output already complete), its wall time, its figures."""

    name: str
    skipped: bool
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


Stage = Callable[[DemoConfig, Layout], StageResult]


# ---------------------------------------------------------------------------------------------- stages
def synth_stage(cfg: DemoConfig, layout: Layout) -> StageResult:
    """Render the synthetic data set; skipped when ``synth.json`` (written last) holds these parameters.

    Raises:
        ConfigError: the folder holds a data set made with other parameters.
    """
    marker = layout.synth / "synth.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("parameters") != asdict(cfg.synth):
            raise ConfigError(f"{layout.synth} holds a synthetic set with other parameters "
                              f"({info.get('parameters')}); use a new --out folder")
        return StageResult("synth", True, info=info["counts"])
    info = generate(cfg.synth, layout.synth, workers=cfg.workers)
    return StageResult("synth", False, info=info["counts"])


def shard_stage(cfg: DemoConfig, layout: Layout) -> StageResult:
    """Cut the RecordIO set into shards (resumable), then verify every shard against the manifest.

    Raises:
        DataError: verification found a mismatch (the first one is named).
    """
    run = write_shards(open_source(layout.synth), layout.shards,
                       ShardOptions(per_shard=cfg.per_shard, seed=cfg.synth.seed), workers=cfg.workers)
    problems = verify_shards(layout.shards)
    if problems:
        raise DataError(layout.shards, "", f"{len(problems)} verification problem(s), first: {problems[0]}")
    info = {"shards": len(run.shards), "samples": run.num_samples, "rejected": run.rejected.num_rows,
            "verified": True}
    return StageResult("shard", run.already_complete, info=info)


def train_config(cfg: DemoConfig, layout: Layout) -> TrainConfig:
    """The resolved training config: the YAML plus the demo's overrides, shards and output folder."""
    overrides = _merge(cfg.train_overrides, {"data": {"shards": str(layout.shards)},
                                             "train": {"output": str(layout.train)}})
    return load_train_config(cfg.train_config, overrides)


def final_checkpoint(tcfg: TrainConfig) -> Path | None:
    """The run's latest checkpoint when it reached ``train.max_steps``, else None."""
    latest = CheckpointStore(Path(tcfg.train.output) / "checkpoints").latest()
    if latest is None or tcfg.train.max_steps is None:
        return None
    return latest if read_state(latest).step >= tcfg.train.max_steps else None


def on_terminal() -> bool:
    """True when stderr is a terminal: the training bar is drawn then, and silent in logs and tests
    (like the other stages' tqdm bars)."""
    return sys.stderr.isatty()


def train_stage(cfg: DemoConfig, layout: Layout) -> StageResult:
    """Train the backbone with :func:`fr_train.trainer.run`, resuming from the latest checkpoint.

    Raises:
        ConfigError: the training config sets no ``train.max_steps`` (the demo needs a fixed length).
    """
    tcfg = train_config(cfg, layout)
    if tcfg.train.max_steps is None:
        raise ConfigError(f"{cfg.train_config}: the demo needs train.max_steps")
    tcfg.train.progress = on_terminal()  # the longest stage shows its steps, like the other stages' bars
    done = final_checkpoint(tcfg)
    skipped = done is not None
    if done is None:
        done = train_run(tcfg, resume=True).checkpoint
    return StageResult("train", skipped, info={"checkpoint": str(done), **_last_metrics(layout.train)})


def _last_metrics(train_dir: Path) -> dict[str, Any]:
    """Step and loss of the last record of ``metrics.jsonl`` that has a loss."""
    path = train_dir / "metrics.jsonl"
    last: dict[str, Any] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "loss" in record:
                last = record
    return {"steps": last.get("step"), "final_loss": last.get("loss"), "img_s": last.get("img_s")}


def load_backbone(cfg: DemoConfig, layout: Layout) -> tuple[nn.Module, dict[str, Any]]:
    """The trained backbone and its spec (resolved as ``hardmine embed`` does: registry name + checkpoint)."""
    tcfg = train_config(cfg, layout)
    checkpoint = final_checkpoint(tcfg)
    if checkpoint is None:
        raise DataError(layout.train, "checkpoints", "no final checkpoint: run the train stage first")
    weights = checkpoint / "model.pt"
    size = tcfg.model.embedding_size
    model = resolve_model(tcfg.model.name, weights,
                          named=lambda name: get_model(name, embedding_size=size, **tcfg.model.options))
    digest = file_sha256(weights)
    return model, {"model": tcfg.model.name, "checkpoint": str(weights), "checkpoint_sha256": digest,
                   "embedding_size": size}


def embed_stage(cfg: DemoConfig, layout: Layout) -> StageResult:
    """Flip-sum embeddings of every shard sample; skipped when ``emb/run.json`` names the same checkpoint."""
    model, spec = load_backbone(cfg, layout)
    info = ef.read_run_info(layout.emb)
    if info.get("spec") == spec:
        return StageResult("embed", True, info={"count": info["count"], "dims": info["dims"]})
    device = runtime.resolve_device("auto")
    info = embed_folder(model, layout.shards, layout.emb, batch_size=cfg.embed_batch, device=device,
                        workers=1, spec=spec, overwrite=True, progress=False)
    return StageResult("embed", False, info={"count": info["count"], "dims": info["dims"],
                                             "images_per_second": info["images_per_second"]})


def mining_config(cfg: DemoConfig) -> MiningConfig:
    """The demo's mining thresholds (``cfg.mining_config``, else the built-in defaults)."""
    return load_config(cfg.mining_config, MiningConfig) if cfg.mining_config else MiningConfig()


def mine_stage(cfg: DemoConfig, layout: Layout) -> StageResult:
    """Mine the embeddings with the synthetic attributes joined; skipped when ``mined/run.json`` was made
    from the current embeddings (same sha256) and the same thresholds."""
    emb_sha = ef.read_run_info(layout.emb)["sha256"]
    mcfg = mining_config(cfg)
    run = rf.read_run_info(layout.mined)
    if run:
        if run["inputs"]["embeddings_sha256"] == emb_sha and run["config"] == _as_plain(mcfg):
            return StageResult("mine", True, info=run["counts"])
    result = mine(layout.emb, layout.mined, mcfg, samples=samples_path(layout.shards),
                  attributes=layout.synth / "attributes.parquet", overwrite=True)
    return StageResult("mine", False, info=result.run["counts"])


def _as_plain(mcfg: MiningConfig) -> dict[str, Any]:
    """The config as ``run.json`` stores it (JSON types only)."""
    return json.loads(json.dumps(to_dict(mcfg), default=str))


def verification_accuracies(model: nn.Module, synth_dir: Path) -> dict[str, float]:
    """Accuracy (10-fold, flip-sum embeddings) on each synthetic ``.bin`` pack found in ``synth_dir``."""
    accuracies = {}
    for spec in PACKS:
        path = synth_dir / f"{spec.name}.bin"
        if path.is_file():
            metrics = BinEvaluator(path)(model)
            accuracies[spec.name] = round(metrics[f"bin/{spec.name}/accuracy"], 4)
    return accuracies


def evaluate_stage(cfg: DemoConfig, layout: Layout) -> StageResult:
    """Verification accuracy on the packs and mining quality against the ground truth, into
    ``evaluation.json``; skipped when that file was made from the current checkpoint and mining run."""
    model, spec = load_backbone(cfg, layout)
    mined = file_sha256(layout.mined / rf.RUN_FILE)
    stamp = {"checkpoint_sha256": spec["checkpoint_sha256"], "mining_run_sha256": mined}
    if layout.evaluation.is_file():
        stored = json.loads(layout.evaluation.read_text())
        if stored.get("inputs") == stamp:
            return StageResult("evaluate", True, info=stored)
    report = score_run(layout.mined, layout.synth / "attributes.parquet", samples_path(layout.shards))
    info = {"inputs": stamp, "verification": verification_accuracies(model, layout.synth),
            "mining_quality": report.as_dict(), "mining_quality_table": format_report(report)}
    atomic_write_text(layout.evaluation, json.dumps(info, indent=2) + "\n")
    return StageResult("evaluate", False, info=info)


def query_stage(cfg: DemoConfig, layout: Layout) -> StageResult:
    """Run the demo's DuckDB queries over the mining run; results go to ``queries.txt`` (always rerun)."""
    views = open_run(layout.mined, shards=samples_path(layout.shards),
                     attributes=layout.synth / "attributes.parquet")
    blocks, counts = [], {}
    for name in cfg.queries:
        path = Path(name) if Path(name).is_absolute() else query_file(name)
        table, total = head_rows(run_query(views, path.read_text()), cfg.max_query_rows)
        counts[path.stem] = total
        blocks.append(f"-- {path.name}\n{format_table(table, total)}")
    views.con.close()
    atomic_write_text(layout.queries, "\n\n".join(blocks) + "\n")
    return StageResult("query", False, info={"rows": counts})


def report_stage(cfg: DemoConfig, layout: Layout) -> StageResult:
    """Write the review page of the mining run into ``OUT/report``; skipped when it was built from the
    current ``mined/run.json``."""
    mined = file_sha256(layout.mined / "run.json")
    built = read_manifest(layout.report)
    if built.get("run_json_sha256") == mined:
        return StageResult("report", True, info={"index": str(layout.report / "index.html"),
                                                 "sections": built["sections"]})
    result = build_report(layout.mined, layout.shards, layout.report, overwrite=True, workers=cfg.workers)
    return StageResult("report", False, info={"index": str(result.index), "sections": result.manifest["sections"]})


#: The pipeline, in order.
STAGES: tuple[Stage, ...] = (synth_stage, shard_stage, train_stage, embed_stage, mine_stage, evaluate_stage,
                             query_stage, report_stage)


# ------------------------------------------------------------------------------------------- summary
def reconcile(layout: Layout) -> list[str]:
    """Cross-check the stage outputs: every image of the synthetic set is a shard sample, an embedding
    row and a mined row (empty list when everything adds up)."""
    problems = []
    images = json.loads((layout.synth / "synth.json").read_text())["counts"]["num_images"]
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
        started, results = time.perf_counter(), []
        for stage in STAGES:
            name = stage.__name__.removesuffix("_stage")
            log(f"[demo] {name} ...")
            t0 = time.perf_counter()
            result = stage(cfg, layout)
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
        changes["train_overrides"] = _merge(cfg.train_overrides, changes["train_overrides"])
    return replace(cfg, **changes)


def demo_config(size: str = "full", *, seed: int | None = None, steps: int | None = None,
                identities: int | None = None, images_per_identity: int | None = None,
                **fields: Any) -> DemoConfig:
    """A ready size of :data:`DEMO_SIZES` with the command-line changes applied (None = keep).

    ``seed`` seeds the synthetic data set, the shard shuffle and the training data order together
    (another seed is another data set); ``fields`` replace :class:`DemoConfig` fields.
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
    if train:
        changes["train_overrides"] = train
    return with_overrides(cfg, **changes)
