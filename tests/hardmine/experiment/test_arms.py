"""Arms: extends chains, the experiment's own settings, equal-compute step counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fr_data.io.errors import ConfigError
from hardmine.experiment.arms import arm_chain, arm_overrides, check_arms, plan_arm, uses_mining
from hardmine.experiment.config import load_experiment
from tests.repo import ROOT

SHIPPED = ROOT / "configs" / "experiments" / "hard_samples.yaml"
PATHS = {"shards": Path("/x/shards"), "mined": Path("/x/mined"), "weights": Path("/x/train/model.pt"),
         "output": Path("/x/runs/a/seed-0")}


@pytest.fixture(scope="module")
def cfg():
    return load_experiment(SHIPPED, "full")


def test_extends_chains_merge_overrides_in_order(cfg):
    assert arm_chain(cfg, "ddl_ot") == [cfg.arm(name) for name in ("clean", "ddl", "ddl_ot")]
    merged = arm_overrides(cfg, "ddl_ot")
    assert merged["data"]["selection"]["drop_suspects"] is True  # from clean
    assert merged["data"]["composer"]["enabled"] is True  # from ddl
    assert set(merged["objective"]["terms"]) == {"ddl", "ot"}  # ddl_ot adds OT to ddl's DDL
    assert merged["optim"]["lr"] == cfg.finetune.overrides["optim"]["lr"]  # the shared recipe underneath
    assert uses_mining(cfg, "ddl_ot") and not uses_mining(cfg, "lowres_aug")


def test_every_arm_gets_the_same_images_within_the_tolerance(cfg):
    plans = {arm: plan_arm(cfg, arm, 1, PATHS) for arm in cfg.arms}
    for arm, plan in plans.items():
        assert abs(plan.images - cfg.finetune.images) <= cfg.finetune.tolerance * cfg.finetune.images, arm
        assert plan.config.train.max_steps == plan.steps
        assert plan.config.data.seed == plan.config.train.seed == 1
        assert plan.config.model.weights == str(PATHS["weights"])
        assert plan.config.init.head == str(PATHS["weights"].parent / "objective.pt")  # the pretrained head
    batch = cfg.finetune.overrides["data"]["batch_size"]
    composer = cfg.arm("ddl").train["data"]["composer"]
    assert plans["baseline"].images_per_step == batch
    assert plans["ddl"].images_per_step == batch + 3 * (composer["identities"] + 2 * composer["pairs"])
    assert plans["ddl"].steps < plans["baseline"].steps  # a composer step forwards more images
    assert plans["baseline"].config.data.run is None and plans["clean"].config.data.run == str(PATHS["mined"])


def test_an_arm_that_cannot_meet_the_budget_is_refused(tmp_path):
    data = yaml.safe_load(SHIPPED.read_text())
    data["finetune"]["images"] = 100  # one ddl step forwards more than that
    for key in ("config",):
        data["finetune"][key] = str((SHIPPED.parent / data["finetune"][key]).resolve())
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_experiment(path, "full")
    with pytest.raises(ConfigError, match=r"arms.ddl: 208 images per step cannot meet finetune.images 100"):
        plan_arm(cfg, "ddl", 0, PATHS)
    with pytest.raises(ConfigError, match=r"arms.ddl: 208 images per step"):
        check_arms(cfg, ["ddl"])  # refused before anything runs


def test_a_bad_arm_override_names_the_arm(cfg, tmp_path):
    data = yaml.safe_load(SHIPPED.read_text())
    data["finetune"]["config"] = str((SHIPPED.parent / data["finetune"]["config"]).resolve())
    data["arms"]["lowres_aug"]["train"]["data"]["augment"]["lowres_q"] = 1
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"arms.lowres_aug: .*lowres_q"):
        plan_arm(load_experiment(path, "full"), "lowres_aug", 0, PATHS)


def test_arm_lists_are_checked(cfg):
    check_arms(cfg, ["baseline", "ddl"])
    with pytest.raises(ConfigError, match=r"unknown arm\(s\) \['dddl'\]"):
        check_arms(cfg, ["baseline", "dddl"])
    with pytest.raises(ConfigError, match="no arm"):
        check_arms(cfg, [])


def test_an_arm_can_start_from_a_random_head(cfg, tmp_path):
    data = yaml.safe_load(SHIPPED.read_text())
    data["finetune"]["config"] = str((SHIPPED.parent / data["finetune"]["config"]).resolve())
    data["arms"]["fresh"] = {"extends": "ddl", "train": {"init": {"head": None}}}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    assert plan_arm(load_experiment(path, "full"), "fresh", 0, PATHS).config.init.head is None
    data["finetune"]["init_head"] = False
    path.write_text(yaml.safe_dump(data))
    assert plan_arm(load_experiment(path, "full"), "ddl", 0, PATHS).config.init.head is None
