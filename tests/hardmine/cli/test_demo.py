"""tools/demo.py and hardmine.pipelines.demo: a very small end-to-end run whose stage outputs must reconcile."""

import json
import shutil
from types import SimpleNamespace

import pytest

from fr_data.io.errors import ConfigError
from fr_data.mining.groundtruth import TARGETS
from fr_data.synth import SynthConfig
from hardmine.cli import demo as demo_tool
from hardmine.pipelines import demo as demo_pipeline
from hardmine.pipelines.demo import Layout, run_demo, synth_stage, with_overrides
from hardmine.pipelines.stages import Stamper
from tests.demo_run import TINY

STAGES = ["synth", "shard", "train", "embed", "mine", "evaluate", "query", "report"]


@pytest.fixture(scope="module")
def demo_run(tiny_demo):
    return tiny_demo


def test_every_stage_writes_its_outputs(demo_run):
    out, summary, _ = demo_run
    layout = Layout(out)
    for path in [layout.synth / "synth.json", layout.synth / "synth_pose.bin",
                 layout.shards / "samples.parquet", layout.train / "metrics.jsonl",
                 layout.emb / "embeddings.npy", layout.mined / "run.json", layout.mined / "pairs.parquet",
                 layout.evaluation, layout.queries, layout.summary, layout.report / "index.html",
                 layout.report / "report.json"]:
        assert path.is_file(), path
    assert json.loads(layout.summary.read_text()) == json.loads(json.dumps(summary, default=str))
    assert list(summary["stages"]) == STAGES and not any(s["skipped"] for s in summary["stages"].values())
    checkpoint = summary["counts"]["train"]["checkpoint"]
    assert checkpoint.endswith("step-00000004") and (out / "train" / "checkpoints" / "step-00000004").is_dir()


def test_counts_reconcile_across_stages(demo_run):
    _, summary, _ = demo_run
    c = summary["counts"]
    images = c["synth"]["num_images"]
    assert images == 12 * 6 + c["synth"]["near_duplicates"]
    assert c["shard"]["samples"] == c["embed"]["count"] == summary["mining_counts"]["samples_rows"] == images
    assert c["shard"]["verified"] and summary["mining_counts"]["reconciled"]
    assert summary["reconciliation_problems"] == []
    assert c["train"]["steps"] == 4
    page = json.loads((demo_run[0] / "report" / "report.json").read_text())["sections"]
    mined = summary["mining_counts"]
    assert page["suspects"]["total"] == mined["suspect_mislabel"]
    assert page["duplicates"]["total"] == mined["duplicates_same_class"] + mined["duplicates_cross_class"]


def test_summary_reports_accuracies_quality_and_queries(demo_run):
    out, summary, printed = demo_run
    assert set(summary["verification_accuracy"]) == {"synth_easy", "synth_pose", "synth_lowres"}
    assert all(0.0 <= a <= 1.0 for a in summary["verification_accuracy"].values())
    assert set(TARGETS) <= set(summary["mining_quality"]) and set(summary["targets_met"]) == set(TARGETS)
    evaluation = json.loads((out / "evaluation.json").read_text())
    counts = evaluation["mining_quality"]["counts"]
    assert counts["mislabel"]["actual"] == summary["counts"]["synth"]["mislabeled"]
    assert counts["merge"]["actual"] == summary["counts"]["synth"]["split_identities"] == 1
    assert set(summary["query_rows"]) == {"merge_candidates", "duplicates_to_drop",
                                          "hard_samples_per_pose_bin"}
    assert "-- merge_candidates.sql" in (out / "queries.txt").read_text()
    assert "hardmine demo summary" in printed and "mislabel_precision" in printed
    assert printed.rstrip().endswith(f"review page: {out / 'report' / 'index.html'}")
    assert summary["report"] == str(out / "report" / "index.html")


def test_rerun_skips_finished_stages_and_resumes_removed_ones(demo_run):
    out, first, _ = demo_run
    again = run_demo(TINY, out, log=lambda line: None)
    assert [n for n, s in again["stages"].items() if not s["skipped"]] == ["query"]
    assert again["mining_quality"] == first["mining_quality"]
    shutil.rmtree(out / "mined")
    resumed = run_demo(TINY, out, log=lambda line: None)
    assert [n for n, s in resumed["stages"].items() if not s["skipped"]] == ["mine", "evaluate", "query",
                                                                              "report"]
    assert resumed["mining_counts"] == first["mining_counts"]
    assert resumed["mining_quality"] == first["mining_quality"]


def test_a_folder_made_with_other_parameters_is_refused(demo_run, capsys):
    out, _, _ = demo_run
    other = with_overrides(TINY, synth=SynthConfig(identities=13, images_per_identity=6, holdout_identities=4,
                                                   pairs=20))
    with pytest.raises(ConfigError, match="other parameters"):
        synth_stage(other, Layout(out), Stamper(Layout(out)))
    assert demo_tool.main(["--out", str(out), "--small"]) == 2
    assert "other parameters" in capsys.readouterr().err


def test_demo_config_applies_seed_steps_and_sizes_over_the_ready_size():
    from hardmine.pipelines.demo import DEMO_SIZES, demo_config
    cfg = demo_config("small", seed=3, steps=7, identities=11, workers=1)
    base = DEMO_SIZES["small"]
    assert cfg.synth.seed == 3 and cfg.synth.identities == 11
    assert cfg.synth.images_per_identity == base.synth.images_per_identity
    assert cfg.train_overrides["train"]["max_steps"] == 7 and cfg.train_overrides["data"]["seed"] == 3
    assert cfg.train_overrides["data"]["batch_size"] == base.train_overrides["data"]["batch_size"]
    assert cfg.workers == 1 and cfg.mining_config == base.mining_config
    assert demo_config("small") == base


def test_demo_config_keeps_the_callers_train_overrides_when_seed_or_steps_are_given():
    from hardmine.pipelines.demo import DEMO_SIZES, demo_config
    base = DEMO_SIZES["small"]
    mine = {"model": {"embedding_size": 128}, "train": {"max_steps": 99, "lr": 0.5}}
    for cfg in (demo_config("small", seed=3, train_overrides=mine),
                demo_config("small", steps=7, train_overrides=mine)):
        assert cfg.train_overrides["model"]["embedding_size"] == 128 and cfg.train_overrides["train"]["lr"] == 0.5
        assert cfg.train_overrides["data"]["batch_size"] == base.train_overrides["data"]["batch_size"]
    assert demo_config("small", seed=3, train_overrides=mine).train_overrides["data"]["seed"] == 3
    assert demo_config("small", steps=7, train_overrides=mine).train_overrides["train"]["max_steps"] == 7  # steps win
    assert demo_config("small", train_overrides=mine).train_overrides["train"]["max_steps"] == 99


def test_the_demo_ends_with_a_pointer_to_the_experiment(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo_tool, "run_demo", lambda cfg, out: print("summary"))
    assert demo_tool.main(["--out", str(tmp_path / "d"), "--small"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == demo_tool.NEXT and "tools/experiment.py --out" in lines[-1]


class _Stream:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_the_training_stage_shows_its_bar_only_on_a_terminal(tmp_path, monkeypatch, tty):
    seen = []
    monkeypatch.setattr(demo_pipeline.stages, "train_stage",
                        lambda stamper, tcfg: seen.append(tcfg.train.progress) or SimpleNamespace(name="train"))
    monkeypatch.setattr(demo_pipeline.sys, "stderr", _Stream(tty))
    demo_pipeline.train_stage(TINY, Layout(tmp_path), stamper=None)
    assert seen == [tty]
