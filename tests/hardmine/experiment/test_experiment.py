"""The experiment end to end on a tiny config (slow: about a minute on 2 cores): every stage, the results
schema and the equal-compute accounting, the report and figures, skipping on a rerun, redoing what an
input change touches, and the folder check against another config."""

from __future__ import annotations

import contextlib
import io

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from fr_data.folders.experiment_folder import RESULTS_SCHEMA, read_estimates, read_results
from hardmine.cli.experiment import main
from hardmine.experiment.config import load_experiment
from hardmine.experiment.scoring import (decode_uint8, load_backbone, load_pack, load_scores, pack_metrics,
                                         score_images)
from hardmine.experiment.stages import Context, Layout, model_name, run_stages
from hardmine.experiment.verdict import verdict_of
from hardmine.pipelines.stamps import read_stamp
from tests.hardmine.experiment.tiny import ARMS, write_tiny

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
PACKS = {"synth_easy", "synth_pose", "synth_lowres"}


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("experiment")
    config = write_tiny(folder)
    out = folder / "exp"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            assert main(["--out", str(out), "--config", str(config), "--size", "small", "--arms", *ARMS,
                         "--workers", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    (folder / "printed.txt").write_text(printed.getvalue())
    return out, config


def context(out, config, **kw) -> Context:
    return Context(load_experiment(config, "small"), Layout(out), ARMS, [0], workers=1, log=lambda line: None, **kw)


def test_results_have_one_row_per_arm_seed_and_pack(exp):
    out, config = exp
    cfg = load_experiment(config, "small")
    for split in ("test", "validation"):
        table = read_results(out, split)
        assert table.schema.equals(RESULTS_SCHEMA)
        rows = table.to_pylist()
        assert {(r["arm"], r["seed"], r["pack"]) for r in rows} == {(a, 0, p) for a in ARMS for p in PACKS}
        assert len(rows) == len(ARMS) * len(PACKS)
        for r in rows:
            assert 0 <= r["accuracy"] <= 1 and 0 <= r["tpr_at_fpr_1e_2"] <= 1
            assert r["tpr_at_fpr_1e_3"] is None  # 100 impostor pairs: FPR 1e-3 is out of reach
            assert abs(r["images_seen"] - cfg.finetune.images) <= cfg.finetune.tolerance * cfg.finetune.images


def test_images_seen_is_what_each_run_forwarded_composer_branches_included(exp):
    out, _ = exp
    rows = {(r["arm"], r["pack"]): r for r in read_results(out).to_pylist()}
    ddl = read_stamp(out / "stages" / "finetune-ddl.seed-0.json")["info"]
    baseline = read_stamp(out / "stages" / "finetune-baseline.seed-0.json")["info"]
    assert ddl["images_per_step"] == 16 + 2 * (3 + 2 * 2)  # batch + easy and hard branch images
    assert ddl["steps"] < baseline["steps"] and ddl["images_seen"] == ddl["steps"] * ddl["images_per_step"]
    assert rows[("ddl", "synth_pose")]["images_seen"] == ddl["images_seen"]
    last = [r for r in map(yaml.safe_load, (out / "runs/ddl/seed-0/metrics.jsonl").read_text().splitlines())
            if "images_seen" in r][-1]
    assert last["step"] == ddl["steps"] and last["images_seen"] == ddl["images_seen"]  # the trainer's own count


def test_checkpoints_load_with_their_config_and_reproduce_the_scores(exp):
    out, config = exp
    row = next(r for r in read_results(out).to_pylist() if r["arm"] == "clean" and r["pack"] == "synth_pose")
    weights = out / row["checkpoint"]
    assert weights.name == "model.pt" and (weights.parent / "config.yaml").is_file()
    model = load_backbone(weights)
    pack = load_pack(out / "packs" / "test" / "synth_pose.bin")
    scores = score_images(model, decode_uint8(pack))
    stored = load_scores(out / "scores" / "test" / f"{model_name('clean', 0)}.npz")["synth_pose"]
    assert scores == pytest.approx(stored.scores, abs=1e-5)
    assert pack_metrics(stored)["accuracy"] == row["accuracy"]


def test_report_and_figures(exp):
    out, _ = exp
    report = (out / "report.md").read_text()
    for heading in ("## Results on the test packs", "### Gain over baseline (test)", "## Results on the validation",
                    "## What was tuned", "## Verdict", "### Compute per arm"):
        assert heading in report
    assert "Best DDL arm on the validation packs: `ddl`" in report
    for name in ("roc_test", "roc_validation", "gain_test", "similarity_test"):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"figures/{name}.png" in report


def test_the_command_prints_the_verdict_section_of_its_report(exp):
    out, _ = exp
    report = (out / "report.md").read_text()
    printed = (out.parent / "printed.txt").read_text()
    verdict = report[report.index("## Verdict"):report.index("## Figures")].rstrip()
    assert f"\n{verdict}\n\nwrote {out / 'report.md'} (" in printed  # after the stage log lines
    assert verdict == verdict_of(out).text  # the report's verdict is the one read from estimates.parquet


def test_estimates_hold_each_arms_seed_mean_and_the_gains_the_verdict_reads(exp):
    out, _ = exp
    estimates = read_estimates(out).to_pylist()
    results = read_results(out).to_pylist()
    for r in results:  # one seed: the estimate of an arm on a pack is its results row
        own = [e for e in estimates if (e["split"], e["arm"], e["packs"], e["metric"], e["over"])
               == ("test", r["arm"], [r["pack"]], "tpr_at_fpr_1e_2", None)]
        assert len(own) == 1 and own[0]["value"] == pytest.approx(r["tpr_at_fpr_1e_2"]) and own[0]["seeds"] == 1
        assert own[0]["low"] <= own[0]["high"]
    gains = {(e["split"], e["arm"], tuple(e["packs"]), e["metric"]): e["value"] for e in estimates
             if e["over"] == "baseline"}
    value = {(r["arm"], r["pack"]): r["tpr_at_fpr_1e_2"] for r in results}
    assert gains[("test", "ddl", ("synth_pose", "synth_lowres"), "tpr_at_fpr_1e_2")] == pytest.approx(
        (value[("ddl", "synth_pose")] - value[("baseline", "synth_pose")]
         + value[("ddl", "synth_lowres")] - value[("baseline", "synth_lowres")]) / 2)
    assert {e["split"] for e in estimates} == {"validation", "test"}


def test_a_rerun_skips_every_stage(exp):
    out, config = exp
    before = pq.read_table(out / "results.parquet")
    results = run_stages(context(out, config))
    assert all(r.skipped for r in results), [r.name for r in results if not r.skipped]
    assert pq.read_table(out / "results.parquet").equals(before)


def test_another_config_is_refused_naming_the_keys_then_redone_where_it_changed(exp, capsys):
    out, config = exp
    (config.parent / "changed").mkdir()
    changed = write_tiny(config.parent / "changed", arms={"ddl": {"train": {"data": {"composer": {"pairs": 3}}}}})
    args = ["--out", str(out), "--config", str(changed), "--size", "small", "--arms", *ARMS, "--workers", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "made by another config" in err and "arms.ddl.train.data.composer.pairs" in err
    assert err.count("\n") == 1  # one line
    clean_stamp = (out / "stages" / "finetune-clean.seed-0.json").read_text()
    assert main([*args, "--overwrite"]) == 0
    assert (out / "stages" / "finetune-clean.seed-0.json").read_text() == clean_stamp  # untouched arm
    ddl = read_stamp(out / "stages" / "finetune-ddl.seed-0.json")["info"]
    assert ddl["images_per_step"] == 16 + 2 * (3 + 2 * 3)  # redone with the new composer
    assert {r["images_seen"] for r in read_results(out).to_pylist() if r["arm"] == "ddl"} == {ddl["images_seen"]}
