"""Pooling experiment folders over pretrained backbones: the per-member means and gains, the t-interval,
the arm chosen on validation only, the goal on the means, refusals, the POOL folder and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from fr_data.folders import pool_folder
from fr_data.folders.experiment_folder import write_results
from fr_data.io.errors import ConfigError, DataError
from hardmine.cli.experiment_pool import main
from hardmine.experiment.config import GoalSection, experiment_dict, load_experiment, with_data_seed
from hardmine.experiment.pool import (Pooled, best_arm, check_members, common_arms, goal_checks, keep_member,
                                      member_files, pooled_gain, read_member, t_quantile)
from hardmine.experiment.verdict import verdict_of
from tests.repo import ROOT

SHIPPED = ROOT / "configs" / "experiments" / "hard_samples.yaml"
PACKS = ("synth_easy", "synth_pose", "synth_lowres")
METRIC = "tpr_at_fpr_1e_2"


def make_member(root: Path, name: str, tprs: dict[str, dict[tuple[str, str], list[float]]], data_seed: int,
                backbone: str | None = None, config: dict | None = None) -> Path:
    """An experiment folder with the shipped recipe at ``data_seed``, a train stamp and the given TPRs:
    split -> (arm, pack) -> one value per fine-tuning seed."""
    out = root / name
    (out / "stages").mkdir(parents=True)
    cfg = config or experiment_dict(with_data_seed(load_experiment(SHIPPED, "full"), data_seed))
    (out / "experiment.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    sha = backbone or f"{data_seed:064x}"
    (out / "stages" / "train.json").write_text(json.dumps({"done": True, "inputs": {}, "info": {"sha256": sha}}))
    for split, values in tprs.items():
        rows = [{"arm": arm, "seed": seed, "pack": pack, "accuracy": 0.9, METRIC: v, "tpr_at_fpr_1e_3": 0.1,
                 "images_seen": 24000, "train_seconds": 1.0, "checkpoint": f"runs/{arm}/seed-{seed}/model.pt"}
                for (arm, pack), seeds in values.items() for seed, v in enumerate(seeds)]
        write_results(out, rows, split)
    return out


def flat(arms: dict[str, tuple[float, float, float]], seeds: int = 2) -> dict[tuple[str, str], list[float]]:
    """(easy, pose, lowres) per arm, the same value at every seed."""
    return {(arm, pack): [v] * seeds for arm, vals in arms.items() for pack, v in zip(PACKS, vals)}


#: Per member: validation and test TPRs. On validation `ddl` is the best DDL arm in both members; on test
#: `ddl_w3` would be (the pooled verdict must not look at that).
M1 = {"validation": flat({"baseline": (.80, .40, .60), "ddl": (.80, .46, .64), "ddl_w3": (.80, .42, .60),
                          "lowres_aug": (.80, .40, .62)}),
      "test": flat({"baseline": (.80, .40, .60), "ddl": (.80, .45, .63), "ddl_w3": (.80, .50, .70),
                    "lowres_aug": (.80, .40, .61)})}
M2 = {"validation": flat({"baseline": (.70, .30, .50), "ddl": (.70, .35, .52), "ddl_w3": (.70, .30, .50),
                          "lowres_aug": (.70, .30, .52)}),
      "test": flat({"baseline": (.70, .30, .50), "ddl": (.71, .32, .53), "ddl_w3": (.70, .40, .60),
                    "lowres_aug": (.70, .30, .51)})}


@pytest.fixture()
def members(tmp_path):
    return [read_member(make_member(tmp_path, "b1", M1, 3), METRIC), read_member(make_member(tmp_path, "b2", M2, 5), METRIC)]


def test_t_quantiles_match_scipy_and_are_conservative_between_table_entries():
    stats = pytest.importorskip("scipy.stats")
    for df in [*range(1, 31), 40, 60, 120]:
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4)
    for df in (35, 50, 90, 500):
        assert t_quantile(df) >= stats.t.ppf(0.975, df)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_pooled_gain_is_the_mean_over_members_of_within_member_gains_with_a_t_interval(members):
    gain = pooled_gain(members, "test", "ddl", ["synth_pose", "synth_lowres"])
    # member 1: (+5 + +3) / 2 = +4; member 2: (+2 + +3) / 2 = +2.5 (points)
    assert gain.values == pytest.approx([4.0, 2.5])
    assert gain.mean == pytest.approx(3.25) and gain.positive == 2
    half = 12.706 * np.std([4.0, 2.5], ddof=1) / math.sqrt(2)
    assert gain.interval() == pytest.approx((3.25 - half, 3.25 + half))
    assert math.isnan(Pooled(np.array([1.0])).interval()[0])


def test_seed_means_average_each_members_seeds(tmp_path):
    tprs = {split: {**flat({"baseline": (.8, .4, .6)}), ("ddl", "synth_pose"): [0.40, 0.50, 0.60],
                    ("ddl", "synth_easy"): [.8] * 3, ("ddl", "synth_lowres"): [.6] * 3} for split in ("validation", "test")}
    m = read_member(make_member(tmp_path, "b", tprs, 3), METRIC)
    assert m.means["test"][("ddl", "synth_pose")] == pytest.approx(0.5)
    assert m.seeds["test"] == {"baseline": 2, "ddl": 3}


def test_the_best_arm_is_chosen_on_validation_and_judged_on_test(members):
    goal = GoalSection(ddl_arms=["ddl", "ddl_w3"])
    assert best_arm(members, goal) == "ddl"  # ddl_w3 is better on test, which chooses nothing
    checks = {what.split(" (")[0]: (ok, p.mean) for ok, what, p in goal_checks(members, goal, "ddl")}
    assert checks["mean hard-pack gain over baseline"] == (True, pytest.approx(3.25))
    assert checks["synth_pose"] == (True, pytest.approx(3.5))
    assert checks["synth_easy"] == (True, pytest.approx(0.5))
    # over lowres_aug: member 1 (+5 + +2) / 2 = 3.5, member 2 (+2 + +2) / 2 = 2
    assert checks["mean hard-pack gain over lowres_aug"] == (True, pytest.approx(2.75))
    assert all(ok for ok, _, _ in goal_checks(members, goal, "ddl"))
    worse = goal_checks(members, GoalSection(ddl_arms=["ddl"], min_gain=3.5), "ddl")
    assert not worse[0][0]


def test_refusals_name_what_is_wrong(tmp_path, members):
    with pytest.raises(ConfigError, match="at least two"):
        check_members(members[:1])
    twin = read_member(make_member(tmp_path, "twin", M2, 7, backbone=members[0].backbone), METRIC)
    with pytest.raises(ConfigError, match="same pretrained backbone"):
        check_members([members[0], twin])
    cfg = experiment_dict(with_data_seed(load_experiment(SHIPPED, "full"), 9))
    cfg["finetune"]["images"] = 12000
    other = read_member(make_member(tmp_path, "other", M2, 9, config=cfg), METRIC)
    with pytest.raises(ConfigError, match=r"differing keys: finetune\.images"):
        check_members([members[0], other])
    with pytest.raises(DataError, match="experiment.yaml"):
        read_member(tmp_path / "nowhere", METRIC)
    check_members(members)  # seeds differ (3 / 3003 / 4004 vs 5 / 5005 / 6006): accepted
    drop = {split: {k: v for k, v in vals.items() if k[0] != "baseline"} for split, vals in M2.items()}
    with pytest.raises(ConfigError, match="`baseline` is not scored"):
        check_members([members[0], read_member(make_member(tmp_path, "nobase", drop, 11), METRIC)])
    holed = {split: {k: v for k, v in vals.items() if k != ("ddl", "synth_pose")} for split, vals in M2.items()}
    with pytest.raises(DataError, match=r"validation.parquet \(arm ddl\): no row for pack synth_pose"):
        check_members([members[0], read_member(make_member(tmp_path, "holed", holed, 13), METRIC)])


def test_an_arm_missing_from_one_member_is_left_out(tmp_path, members):
    extra = {split: {**v, **flat({"clean": (.7, .3, .5)})} for split, v in M2.items()}
    third = read_member(make_member(tmp_path, "b3", extra, 7), METRIC)
    assert "clean" in common_arms([third]) and "clean" not in common_arms([*members, third])
    assert common_arms(members) == ["baseline", "ddl", "lowres_aug", "ddl_w3"]  # the config's order


def test_the_cli_writes_the_pool_folder_and_refuses_bad_input(tmp_path, capsys):
    paths = [make_member(tmp_path, "b1", M1, 3), make_member(tmp_path, "b2", M2, 5)]
    out = tmp_path / "pool"
    assert main(["--out", str(out), *map(str, paths)]) == 0
    said = capsys.readouterr().out
    assert "Best DDL arm on the pooled validation gains: `ddl`." in said  # not ddl_w3, the best on test
    assert "**The goal is met on the mean over backbones.**" in said
    assert "meets every criterion alone: 2 of 2 (B1, B2)" in said
    report = (out / pool_folder.REPORT).read_text()
    assert said.startswith(report[report.index("## Verdict"):report.index("## Figures")].rstrip() + "\n\nwrote ")
    assert said.startswith(verdict_of(out).text + "\n\nwrote ")
    table = pool_folder.read_pool_table(out)
    assert table.num_rows == 2 * 2 * 4 * 3  # members x splits x arms x packs
    rows = [r for r in table.to_pylist() if r["member"] == str(paths[0]) and r["split"] == "test"
            and r["arm"] == "ddl" and r["pack"] == "synth_pose"]
    assert rows[0]["value"] == pytest.approx(0.45) and rows[0]["gain"] == pytest.approx(0.05)
    assert rows[0]["seeds"] == 2
    stored = yaml.safe_load((out / pool_folder.CONFIG).read_text())
    assert [m["synth.seed"] for m in stored["members"]] == [3, 5]
    assert (out / pool_folder.FIGURES / "pool_gain_test.png").stat().st_size > 10_000
    report = (out / pool_folder.REPORT).read_text()
    assert "| ddl | hard-pack mean | " in report and "+4.0 / +2.5 | 2 of 2 |" in report
    assert main(["--out", str(out), *map(str, paths)]) == 2  # exists, no --overwrite
    assert main(["--out", str(tmp_path / "p2"), str(paths[0])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("hardmine experiment-pool: error:") for line in err)


def test_the_pooled_verdict_is_read_from_pool_parquet_not_from_pool_md(tmp_path, capsys):
    paths = [make_member(tmp_path, "b1", M1, 3), make_member(tmp_path, "b2", M2, 5)]
    out = tmp_path / "pool"
    assert main(["--out", str(out), *map(str, paths)]) == 0
    before = verdict_of(out)
    assert before.met is True and before.arm == "ddl"
    # pose gains +5 (B1) and +2 (B2): mean +3.5, t-interval 3.5 +- 12.706 * 2.1213 / sqrt(2) = +-19.1
    assert "- met: synth_pose (goal: not worse): +3.5 [-15.6, +22.6] (backbones: +5.0 / +2.0)" in before.lines
    (out / pool_folder.REPORT).write_text("## Verdict\n\n**The goal is not met on the mean over backbones.**\n")
    assert verdict_of(out) == before
    rows = pool_folder.read_pool_table(out).to_pylist()
    for r in rows:  # B1's ddl loses 10 points on the test pose pack: -5 and +2, mean -1.5 +- 12.706 * 4.950 / sqrt(2)
        if r["member"] == str(paths[0]) and (r["split"], r["arm"], r["pack"]) == ("test", "ddl", "synth_pose"):
            r["value"] -= 0.10
    pool_folder.write_pool_table(out, rows)
    after = verdict_of(out)
    assert after.met is False
    assert "- NOT met: synth_pose (goal: not worse): -1.5 [-46.0, +43.0] (backbones: -5.0 / +2.0)" in after.lines


def test_data_seed_follows_the_shipped_convention():
    cfg = load_experiment(SHIPPED, "full")
    replication = load_experiment(SHIPPED.parent / "hard_samples_replication.yaml", "full")
    assert experiment_dict(with_data_seed(cfg, 5)) == experiment_dict(replication)
    assert experiment_dict(with_data_seed(cfg, 3)) == experiment_dict(cfg)
    with pytest.raises(ConfigError, match="--data-seed"):
        with_data_seed(cfg, 0)


def test_a_kept_draw_holds_only_the_pooled_files_and_pools_like_its_folder(tmp_path):
    src = make_member(tmp_path, "b1", M1, 3)
    (src / "runs").mkdir()
    (src / "runs" / "model.pt").write_bytes(b"weights")
    stamp = json.loads((src / "stages" / "train.json").read_text())
    stamp["inputs"] = {"shards": str(src / "shards"), "other": "/elsewhere/x"}
    (src / "stages" / "train.json").write_text(json.dumps(stamp))
    kept = keep_member(src, tmp_path / "kept" / "b1")
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file()) == sorted(
        p.as_posix() for p in member_files(src))
    assert json.loads((kept / "stages" / "train.json").read_text())["inputs"] == {
        "shards": "$EXP/shards", "other": "/elsewhere/x"}
    a, b = read_member(src, METRIC), read_member(kept, METRIC)
    assert (a.backbone, a.means, a.seeds) == (b.backbone, b.means, b.seeds)
    with pytest.raises(DataError, match="exists"):
        keep_member(src, kept)
    (src / "stages" / "train.json").unlink()
    with pytest.raises(DataError, match="train.json"):
        keep_member(src, tmp_path / "other")
    assert not (tmp_path / "other").exists()
