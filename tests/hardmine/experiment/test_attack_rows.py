"""The AFA arms in the experiment on a tiny config (slow: the tiny experiment of test_experiment.py plus the
attacks): equal compute with the PGD steps counted, results rows ``synth_easy@pgdE`` on the test split only
(eps 0 equal to the clean row), the report's attack table and figure; and the shipped adversarial config."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from fr_data.folders.experiment_folder import read_results
from fr_data.io.errors import ConfigError
from fr_train.optim import build_schedule
from hardmine.cli.experiment import main
from hardmine.experiment.arms import check_arms, plan_arm
from hardmine.experiment.config import experiment_dict, load_experiment
from hardmine.experiment.scoring import load_scores
from tests.hardmine.experiment.tiny import write_tiny
from tests.repo import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
ARMS = ["baseline", "afa", "pgd_at"]
ADVERSARIAL = ROOT / "configs" / "experiments" / "adversarial.yaml"
ARM_SETTINGS = {
    "afa": {"train": {"model": {"options": {"dual_bn": True}}, "adversarial": {"mode": "afa", "steps": 1}}},
    "pgd_at": {"train": {"adversarial": {"mode": "pgd_at", "strength": "fixed", "steps": 1}}},
}


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attack")
    config = write_tiny(folder, arms=ARM_SETTINGS, finetune={"images": 480},
                        evaluation={"attack": {"eps": [0, 8], "steps": 2, "splits": ["test"]}},
                        goal={"hard_packs": ["synth_easy@pgd8"], "ddl_arms": ["afa"], "competitor": "pgd_at",
                              "method": "AFA"})
    out = folder / "exp"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--out", str(out), "--config", str(config), "--size", "small", "--arms", *ARMS,
                     "--workers", "1"]) == 0
    return out


def test_attack_rows_per_eps_with_eps_0_equal_to_the_clean_row(exp):
    rows = {(r["arm"], r["pack"]): r for r in read_results(exp, "test").to_pylist()}
    for arm in ARMS:
        clean, zero = rows[(arm, "synth_easy")], rows[(arm, "synth_easy@pgd0")]
        assert (zero["accuracy"], zero["tpr_at_fpr_1e_2"]) == (clean["accuracy"], clean["tpr_at_fpr_1e_2"])
        assert (arm, "synth_easy@pgd8") in rows and (arm, "synth_pose@pgd8") not in rows
    # batch 16: baseline 16 images a step, pgd_at 16 + 1 PGD step, afa 16 + 16 attacked + 1 PGD step
    assert {arm: rows[(arm, "synth_easy")]["images_seen"] for arm in ARMS} == {"baseline": 480, "afa": 480,
                                                                               "pgd_at": 480}
    validation = {r["pack"] for r in read_results(exp, "validation").to_pylist()}
    assert validation == {"synth_easy", "synth_pose", "synth_lowres"}  # attack.splits: test only


def test_the_attack_pushes_genuine_pairs_apart_and_impostors_together(exp):
    for arm in ARMS:
        scores = load_scores(exp / "scores" / "test" / f"{arm}.seed-0.npz")
        clean, attacked = scores["synth_easy"], scores["synth_easy@pgd8"]
        genuine = clean.issame
        assert np.array_equal(attacked.issame, genuine)
        assert attacked.scores[genuine].mean() < clean.scores[genuine].mean()
        assert attacked.scores[~genuine].mean() > clean.scores[~genuine].mean()
    assert "synth_easy@pgd8" not in load_scores(exp / "scores" / "test" / "pretrained.npz")


def test_report_has_the_attack_table_and_figure(exp):
    report = (exp / "report.md").read_text()
    assert "### Verification under attack (test)" in report and "| eps 0/255 | eps 8/255 |" in report
    assert "### Verification under attack (validation)" not in report
    assert "Best AFA arm on the validation packs: `afa`" in report  # one goal arm: chosen without its packs
    png = exp / "figures" / "attack_test.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "figures/attack_test.png" in report


@pytest.mark.parametrize("size", ["small", "full"])
def test_the_shipped_adversarial_config_runs_three_arms_at_equal_compute(size):
    cfg = load_experiment(ADVERSARIAL, size)
    assert list(cfg.arms) == ["baseline", "afa", "pgd_at"] and cfg.evaluation.attack.eps == [0, 2, 4, 8]
    check_arms(cfg, list(cfg.arms))
    paths = {name: Path(name) for name in ("shards", "mined", "weights", "output")}
    for arm in cfg.arms:  # the schedule fits the steps equal compute leaves (afa: 19 at size small)
        plan = plan_arm(cfg, arm, 0, paths)
        build_schedule(plan.config.schedule, plan.config.optim.lr, plan.steps, plan.steps)


def test_attack_settings_are_validated_and_left_out_of_the_stored_config_when_off(tmp_path):
    with pytest.raises(ConfigError, match="epss"):
        load_experiment(write_tiny(tmp_path, evaluation={"attack": {"epss": [1]}}), "full")
    with pytest.raises(ConfigError, match="evaluation.attack.packs"):
        load_experiment(write_tiny(tmp_path, evaluation={"attack": {"eps": [1], "packs": ["synth_eazy"]}}), "full")
    assert "attack" not in experiment_dict(load_experiment(ROOT / "configs" / "experiments" / "hard_samples.yaml"))["evaluation"]
