"""The verdict of an experiment folder is read from ``EXP/estimates.parquet`` (and the goal of
``EXP/experiment.yaml``), never from ``EXP/report.md``: a fabricated folder with hand-checkable gains."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fr_data.folders.experiment_folder import ESTIMATES, read_estimates, write_estimates
from fr_data.io.errors import SchemaError
from hardmine.experiment.verdict import verdict_of

HARD = ["synth_pose", "synth_lowres"]
GOAL = {"metric": "tpr_at_fpr_1e_2", "hard_packs": HARD, "easy_pack": "synth_easy", "min_gain": 2.0,
        "easy_tolerance": 0.5, "competitor": "lowres_aug", "min_gain_over": 1.0, "ddl_arms": ["ddl", "ddl_ot"]}
ARMS = ["baseline", "ddl", "ddl_ot", "lowres_aug"]


def row(split: str, arm: str, packs: list[str], value: float, over: str | None = "baseline") -> dict:
    """One estimate of one seed, with an interval of +-1 point around ``value``."""
    return {"split": split, "arm": arm, "over": over, "packs": packs, "metric": GOAL["metric"], "value": value,
            "low": value - 0.01, "high": value + 0.01, "level": 0.95, "seed_min": value, "seed_max": value,
            "seeds": 1}


def rows(test_hard_gain: float = 0.025, splits: tuple[str, ...] = ("validation", "test"),
         arms: list[str] = ARMS) -> list[dict]:
    """Own metrics of every arm, and the gains the verdict reads. On validation `ddl_ot` gains more than
    `ddl` (so it is judged); on test `ddl` would be the better one (which must not matter)."""
    out = [row(s, a, [p], 0.5, over=None) for s in splits for a in arms for p in ("synth_easy", *HARD)]
    gains = {"validation": {"ddl": {"hard": 0.03}, "ddl_ot": {"hard": 0.05}},
             "test": {"ddl": {"hard": 0.09}, "ddl_ot": {"hard": test_hard_gain}}}
    for split in splits:
        for arm, values in gains[split].items():
            if arm not in arms:
                continue
            out += [row(split, arm, HARD, values["hard"]), row(split, arm, ["synth_pose"], 0.01),
                    row(split, arm, ["synth_lowres"], 0.04), row(split, arm, ["synth_easy"], -0.004),
                    row(split, arm, HARD, 0.012, over="lowres_aug")]
    return out


def make_folder(root: Path, estimates: list[dict], **goal) -> Path:
    out = root / "exp"
    out.mkdir(parents=True)
    (out / "experiment.yaml").write_text(yaml.safe_dump({"goal": {**GOAL, **goal}}))
    write_estimates(out, estimates)
    return out


def test_the_verdict_is_computed_from_the_estimates_table(tmp_path):
    out = make_folder(tmp_path, rows())
    verdict = verdict_of(out)
    assert verdict.met is True and verdict.arm == "ddl_ot"  # chosen on validation (5 > 3), not on test (9)
    assert "Best DDL arm on the validation packs: `ddl_ot`. On the test packs:" in verdict.lines
    assert ("- met: mean hard-pack gain over baseline +2.5 [+1.5, +3.5] points (goal >= +2.0)"
            in verdict.lines)
    assert "- met: synth_pose: +1.0 [+0.0, +2.0] points (goal: not worse)" in verdict.lines
    assert "- met: synth_easy: -0.4 [-1.4, +0.6] points (goal >= -0.5)" in verdict.lines
    assert "- met: mean hard-pack gain over lowres_aug +1.2 [+0.2, +2.2] points (goal >= +1.0)" in verdict.lines
    assert verdict.lines[0] == "## Verdict" and verdict.text.splitlines()[-3] == "**The goal is met.**"
    assert str(verdict) == verdict.text


def test_the_verdict_names_the_goal_arms_method(tmp_path):
    verdict = verdict_of(make_folder(tmp_path, rows(), method="FAN"))
    assert "Best FAN arm on the validation packs: `ddl_ot`. On the test packs:" in verdict.lines
    assert not any("DDL" in line for line in verdict.lines)


def test_editing_the_report_changes_nothing_editing_the_table_does(tmp_path):
    out = make_folder(tmp_path, rows())
    before = verdict_of(out).text
    (out / "report.md").write_text("## Verdict\n\n**The goal is not met.**\n")
    assert verdict_of(out).text == before
    write_estimates(out, rows(test_hard_gain=0.015))  # 1.5 points: below the goal's 2
    after = verdict_of(out)
    assert after.met is False
    assert "- NOT met: mean hard-pack gain over baseline +1.5 [+0.5, +2.5] points (goal >= +2.0)" in after.lines
    assert after.text.splitlines()[-3] == "**The goal is not met.**"


def test_what_the_verdict_needs_but_was_not_run(tmp_path):
    only_validation = verdict_of(make_folder(tmp_path / "a", rows(splits=("validation",))))
    assert only_validation.met is None and only_validation.lines[-1].startswith("No verdict: it needs both")
    no_ddl = verdict_of(make_folder(tmp_path / "b", rows(arms=["baseline", "lowres_aug"])))
    assert no_ddl.met is None and no_ddl.lines[-1].startswith("No verdict: it needs `baseline` and at least one")
    no_competitor = verdict_of(make_folder(tmp_path / "c", rows(arms=["baseline", "ddl", "ddl_ot"])))
    assert no_competitor.met is False
    assert "- NOT met: lowres_aug was not run: the comparison the goal needs is missing" in no_competitor.lines


def test_the_table_round_trips_nan_as_null_and_a_missing_table_is_named(tmp_path):
    estimates = rows()
    estimates[0] = {**estimates[0], "value": float("nan")}
    out = make_folder(tmp_path, estimates)
    stored = read_estimates(out).to_pylist()
    assert sum(r["value"] is None for r in stored) == 1 and len(stored) == len(estimates)
    (out / ESTIMATES).unlink()
    with pytest.raises(SchemaError, match=ESTIMATES):
        verdict_of(out)
