"""The verdict on the goal, read from a folder's tables: ``verdict_of(EXP)`` or ``verdict_of(POOL)``.

An experiment folder's verdict is computed from ``EXP/estimates.parquet`` (each arm's metric and its
paired gains over other arms, with bootstrap intervals; ``fr_data.folders.experiment_folder``) and the
goal of ``EXP/experiment.yaml``; a pooled folder's from ``POOL/pool.parquet`` (per backbone, the seed
means and gains) and the members and goal of ``POOL/pool.yaml``. Nothing is read from the markdown
reports: ``hardmine experiment`` and ``hardmine experiment-pool`` print ``verdict_of(out)``, and the reports
write the same lines, from the same functions, after writing the tables.

The best DDL arm is chosen on the validation packs (largest mean hard-pack gain over ``baseline``), then
judged on the test packs: the test scores never choose anything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fr_data.folders import experiment_folder, pool_folder
from fr_data.io.config import from_dict
from fr_data.io.errors import DataError
from hardmine.experiment.config import GoalSection
from hardmine.experiment.pool import (BASELINE, Member, Pooled, best_arm, goal_checks, members_from_table,
                                      read_goal, read_mapping)
from hardmine.experiment.stats import Estimate

__all__ = ["Verdict", "Estimates", "verdict_of", "experiment_verdict", "pool_verdict", "format_estimate",
           "format_pooled", "PRETRAINED"]

#: The arm name of the backbone before fine-tuning (its own metric only; it competes for nothing).
PRETRAINED = "pretrained"


@dataclass(frozen=True)
class Verdict:
    """The verdict section: its lines (from ``## Verdict`` on), whether the goal is met (None: no verdict,
    something it needs was not run) and the arm it was judged on."""

    lines: tuple[str, ...]
    met: bool | None
    arm: str | None

    @property
    def text(self) -> str:
        """The lines as printed by the commands and written into the reports."""
        return "\n".join(self.lines).rstrip()

    def __str__(self) -> str:
        return self.text


def format_estimate(est: Estimate, signed: bool = False) -> str:
    """``82.3 [80.1, 84.0] (81.9-82.8)``: percent points, interval, seed range."""
    sign = "+" if signed else ""
    if not np.isfinite(est.value):
        return "n/a"
    text = f"{100 * est.value:{sign}.1f} [{100 * est.low:{sign}.1f}, {100 * est.high:{sign}.1f}]"
    spread = f" ({100 * est.seed_min:{sign}.1f} to {100 * est.seed_max:{sign}.1f})"
    return text + (spread if est.seeds > 1 else "")


def format_pooled(p: Pooled) -> str:
    """``+1.2 [-0.8, +3.1]`` (points, 95% t-interval over backbones)."""
    low, high = p.interval()
    return f"{p.mean:+.1f} [{low:+.1f}, {high:+.1f}]"


class Estimates:
    """The rows of ``EXP/estimates.parquet``, looked up by (split, arm, packs, metric, over)."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]):
        self._rows = {(r["split"], r["arm"], tuple(r["packs"]), r["metric"], r["over"]): r for r in rows}

    @classmethod
    def read(cls, folder: str | os.PathLike) -> Estimates:
        """``EXP/estimates.parquet``, validated (SchemaError naming the file)."""
        return cls(experiment_folder.read_estimates(folder).to_pylist())

    @property
    def splits(self) -> set[str]:
        """The splits the table holds."""
        return {split for split, *_ in self._rows}

    def arms(self, split: str) -> list[str]:
        """The fine-tuned arms with a metric on ``split`` (``pretrained`` left out), sorted."""
        return sorted({arm for s, arm, _, _, over in self._rows
                       if s == split and over is None and arm != PRETRAINED})

    def get(self, split: str, arm: str, packs: Sequence[str], metric: str,
            over: str | None = None) -> Estimate:
        """The estimate of one row; NaN where the table holds null (undefined metric).

        Raises:
            DataError: naming the table and the missing row.
        """
        row = self._rows.get((split, arm, tuple(packs), metric, over))
        if row is None:
            where = f"{split} {arm} {'/'.join(packs)} {metric} over {over}"
            raise DataError(experiment_folder.ESTIMATES, where, "no such row (the verdict needs it)")

        def value(key: str) -> float:
            return math.nan if row[key] is None else float(row[key])

        return Estimate(value("value"), value("low"), value("high"), value("seed_min"), value("seed_max"),
                        int(row["seeds"]))


# ------------------------------------------------------------------------------------------ experiment
def goal_lines(goal: GoalSection) -> list[str]:
    """The heading and the goal in words."""
    return ["## Verdict", "",
            f"Goal, on the test packs, mean of the seeds, at equal compute: the best "
            f"{goal.method} arm raises {goal.metric} by >= {goal.min_gain} points over `baseline` averaged over "
            f"{', '.join(goal.hard_packs)}, neither hard pack worse, {goal.easy_pack} within "
            f"{goal.easy_tolerance} points, and beats `{goal.competitor}` by >= {goal.min_gain_over} point(s) "
            f"on that average.", ""]


def best_ddl_arm(est: Estimates, goal: GoalSection) -> str | None:
    """The goal arm (``goal.ddl_arms``) with the largest mean hard-pack gain over the baseline on the validation packs."""
    arms = est.arms("validation")
    candidates = [a for a in goal.ddl_arms if a in arms]
    if not candidates or BASELINE not in arms:
        return None
    if len(candidates) == 1:  # nothing to choose (the validation packs need not hold the goal's packs)
        return candidates[0]
    gains = {a: est.get("validation", a, goal.hard_packs, goal.metric, BASELINE).value for a in candidates}
    return max(gains, key=gains.get)


def judge(est: Estimates, goal: GoalSection, arm: str) -> tuple[bool, list[str]]:
    """Check the goal on the test packs for ``arm``; return (met, plain-words lines)."""
    def gain(packs: Sequence[str], over: str = BASELINE) -> Estimate:
        return est.get("test", arm, packs, goal.metric, over)

    hard = gain(goal.hard_packs)
    checks = [(100 * hard.value >= goal.min_gain, f"mean hard-pack gain over baseline "
               f"{format_estimate(hard, True)} points (goal >= +{goal.min_gain})")]
    checks += [(e.value >= 0, f"{p}: {format_estimate(e, True)} points (goal: not worse)")
               for p, e in ((p, gain([p])) for p in goal.hard_packs)]
    easy = gain([goal.easy_pack])
    checks.append((100 * easy.value >= -goal.easy_tolerance, f"{goal.easy_pack}: {format_estimate(easy, True)} "
                   f"points (goal >= -{goal.easy_tolerance})"))
    if goal.competitor in est.arms("test"):
        comp = gain(goal.hard_packs, goal.competitor)
        checks.append((100 * comp.value >= goal.min_gain_over,
                       f"mean hard-pack gain over {goal.competitor} {format_estimate(comp, True)} points "
                       f"(goal >= +{goal.min_gain_over})"))
    else:
        checks.append((False, f"{goal.competitor} was not run: the comparison the goal needs is missing"))
    return all(ok for ok, _ in checks), [f"- {'met' if ok else 'NOT met'}: {text}" for ok, text in checks]


def experiment_verdict(est: Estimates, goal: GoalSection) -> Verdict:
    """The goal, the arm it is judged on and how that arm was chosen, and the outcome."""
    lines = goal_lines(goal)
    if not {"validation", "test"} <= est.splits:
        return Verdict((*lines, "No verdict: it needs both the validation packs (to choose the arm) and the "
                        "test packs."), None, None)
    arm = best_ddl_arm(est, goal)
    if arm is None:
        return Verdict((*lines, "No verdict: it needs `baseline` and at least one of the "
                        f"{goal.method} arms {goal.ddl_arms} among the arms run."), None, None)
    met, checks = judge(est, goal, arm)
    lines += [f"Best {goal.method} arm on the validation packs: `{arm}`. On the test packs:", "", *checks, ""]
    lines.append("**The goal is met.**" if met else "**The goal is not met.**")
    lines += ["", "One pretrained backbone: the intervals resample pairs and fine-tuning seeds, not "
              "pretraining. For the spread between backbones, run other draws (`--data-seed S`) and pool the "
              "folders with `tools/experiment_pool.py`."]
    return Verdict(tuple(lines), met, arm)


# ------------------------------------------------------------------------------------------ pool
def pool_verdict(members: Sequence[Member], goal: GoalSection) -> Verdict:
    """The arm chosen on pooled validation gains and the goal's criteria on the pooled test gains."""
    head = ("## Verdict", "")
    arm = best_arm(members, goal)
    if arm is None:
        return Verdict((*head, f"No verdict: it needs `{BASELINE}` and one of the {goal.method} arms {goal.ddl_arms} "
                        "in every member."), None, None)
    checks = goal_checks(members, goal, arm)
    lines = [*head, f"Best {goal.method} arm on the pooled validation gains: `{arm}`. On the test packs, mean over "
             f"{len(members)} backbones:", ""]
    lines += [f"- {'met' if ok else 'NOT met'}: {what}: {format_pooled(p)} "
              f"(backbones: {' / '.join(f'{v:+.1f}' for v in p.values)})" for ok, what, p in checks]
    per_member = [all(ok for ok, _, _ in goal_checks([m], goal, arm)) for m in members]
    met = all(ok for ok, _, _ in checks)
    alone = ", ".join(f"B{i + 1}" for i, ok in enumerate(per_member) if ok) or "none"
    lines += ["", f"Backbones on which `{arm}` meets every criterion alone: {sum(per_member)} of {len(members)}"
              f" ({alone}).", "",
              "**The goal is met on the mean over backbones.**" if met else
              "**The goal is not met on the mean over backbones.**"]
    return Verdict(tuple(lines), met, arm)


def read_pool(folder: str | os.PathLike) -> tuple[list[Member], GoalSection]:
    """The members (per split, arm and pack: the seed means of ``POOL/pool.parquet``, in the order of
    ``POOL/pool.yaml``) and the goal of the pooled recipe.

    Raises:
        DataError / SchemaError: naming the file that is missing or unreadable.
    """
    path = Path(folder) / pool_folder.CONFIG
    stored = read_mapping(path, "a pool folder")
    if not isinstance(stored.get("recipe"), dict) \
            or not isinstance(stored.get("members"), list) \
            or not all(isinstance(m, dict) and "folder" in m for m in stored["members"]):
        raise DataError(path, "", "not a pool config (a recipe, and members each with a folder, expected)")
    recipe = stored["recipe"]
    goal = from_dict(GoalSection, dict(recipe.get("goal") or {}), f"{path}: recipe.goal")
    table = pool_folder.read_pool_table(folder)
    members = members_from_table(table.to_pylist(), stored["members"], recipe, Path(folder) / pool_folder.TABLE)
    return members, goal


def verdict_of(folder: str | os.PathLike) -> Verdict:
    """The verdict of an experiment folder (``estimates.parquet`` + ``experiment.yaml``) or of a pooled folder
    (``pool.parquet`` + ``pool.yaml``), from those files only.

    Raises:
        DataError / SchemaError / ConfigError: naming the file that is missing, unreadable or invalid.
    """
    if (Path(folder) / pool_folder.CONFIG).is_file():
        return pool_verdict(*read_pool(folder))
    return experiment_verdict(Estimates.read(folder), read_goal(folder))
