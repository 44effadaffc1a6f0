"""``POOL/pool.md``, ``POOL/pool.yaml``, ``POOL/pool.parquet`` and ``POOL/figures``: the gains of every arm
over ``baseline`` averaged over pretrained backbones (one per pooled experiment folder), each backbone's
value beside the mean, and the goal judged on the means."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from fr_data.folders import pool_folder
from fr_data.io.publish import staged_folder
from hardmine.experiment import figures
from hardmine.experiment.config import GoalSection
from hardmine.experiment.pool import (BASELINE, SEED_KEYS, SPLITS, Member, common_arms, dotted, pool_rows,
                                      pooled_gain)
from hardmine.experiment.report import machine_line
from hardmine.experiment.verdict import Verdict, format_pooled, verdict_of

__all__ = ["write_pool_folder", "pool_report", "members_yaml"]


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def members_table(members: Sequence[Member]) -> list[str]:
    rows = [[f"B{i + 1}", f"`{m.path}`", m.backbone[:12], *(dotted(m.config, k) for k in SEED_KEYS)]
            for i, m in enumerate(members)]
    return _table(["backbone", "folder", "pretrained sha256", *SEED_KEYS], rows)


def gains_table(members: Sequence[Member], goal: GoalSection, split: str) -> list[str]:
    """Per arm and pack (and the hard-pack mean): pooled gain, each backbone's gain, backbones above 0."""
    groups = [*((p, [p]) for p in (goal.easy_pack, *goal.hard_packs)), ("hard-pack mean", goal.hard_packs)]
    rows = []
    for arm in common_arms(members):
        if arm == BASELINE:
            continue
        for label, packs in groups:
            gain = pooled_gain(members, split, arm, packs)
            rows.append([arm, label, format_pooled(gain), " / ".join(f"{v:+.1f}" for v in gain.values),
                         f"{gain.positive} of {len(members)}"])
    return _table(["arm", "pack", "gain (points, mean [95% t-interval over backbones])",
                   " / ".join(f"B{i + 1}" for i in range(len(members))), "backbones > 0"], rows)


def values_table(members: Sequence[Member], goal: GoalSection, split: str) -> list[str]:
    """Per arm: the metric in % per pack, mean over backbones (each the mean over its seeds)."""
    packs = [goal.easy_pack, *goal.hard_packs]
    rows = [[arm, *(f"{100 * sum(m.means[split][(arm, p)] for m in members) / len(members):.1f}" for p in packs)]
            for arm in common_arms(members)]
    return _table(["arm", *packs], rows)


def draw(members: Sequence[Member], goal: GoalSection, out: Path) -> list[Path]:
    """The gain figure of each split: bars = mean over backbones with the t-interval, dots = backbones."""
    groups = [*((p, [p]) for p in (goal.easy_pack, *goal.hard_packs)), ("hard mean", goal.hard_packs)]
    arms = [a for a in common_arms(members) if a != BASELINE]
    paths = []
    for split in SPLITS:
        gains = {a: {label: pooled_gain(members, split, a, packs) for label, packs in groups} for a in arms}
        paths.append(figures.pool_figure(
            {a: {k: (p.mean, *p.interval(), list(p.values)) for k, p in g.items()} for a, g in gains.items()},
            [label for label, _ in groups],
            f"{goal.metric} gain over baseline, {split} packs, {len(members)} pretrained backbones\n"
            "(bars: mean, 95% t-interval; dots: backbones)", out / pool_folder.FIGURES / f"pool_gain_{split}.png"))
    return paths


def pool_report(members: Sequence[Member], goal: GoalSection, out: Path, command: str,
                verdict: Verdict) -> str:
    """The report's text, ending with ``verdict``; figures are drawn into ``out/figures``."""
    paths = draw(members, goal, out)
    lines = ["# Pooled hard-sample experiment", "", f"Command: `{command}`  ", f"Machine: {machine_line()}  ",
             f"Written: {time.strftime('%Y-%m-%d %H:%M:%S')}; arms in every member: {common_arms(members)}.", "",
             "Each member is one experiment folder, i.e. one pretrained backbone with its fine-tuning seeds. "
             "Per member the metric is averaged over its seeds and the gain over `baseline` is taken within "
             "it; below, the mean over members with a 95% Student-t interval over members (the spread "
             "between backbones), and each member's value.", "", "## Members", "", *members_table(members), ""]
    for split in ("test", "validation"):
        lines += [f"## {split.capitalize()} packs", "", f"{goal.metric} (%), mean over backbones:", "",
                  *values_table(members, goal, split), "", f"Gain over `{BASELINE}`:", "",
                  *gains_table(members, goal, split), ""]
    lines += [*verdict.lines, "", "## Figures", ""]
    lines += [f"![{p.stem}]({pool_folder.FIGURES}/{p.name})" for p in paths]
    return "\n".join(lines) + "\n"


def members_yaml(members: Sequence[Member]) -> str:
    """``POOL/pool.yaml``: each member's folder, backbone and seeds, then the first member's recipe."""
    listed = [{"folder": str(m.path), "backbone_sha256": m.backbone, **{k: dotted(m.config, k) for k in SEED_KEYS}}
              for m in members]
    plain = json.loads(json.dumps({"members": listed, "recipe": members[0].config}))  # no YAML aliases
    return yaml.safe_dump(plain, sort_keys=False)


def write_pool_folder(members: Sequence[Member], out: str | os.PathLike, overwrite: bool,
                      command: str) -> Path:
    """Write ``POOL`` through a staging folder (renamed once complete); return the report's path. The
    report's verdict is ``verdict_of`` the staged tables (what the command prints from the published ones)."""
    goal = members[0].goal
    with staged_folder(out, overwrite, "pool folder") as staging:
        pool_folder.write_pool_table(staging, pool_rows(members, goal.metric))
        (staging / pool_folder.CONFIG).write_text(members_yaml(members))
        report = pool_report(members, goal, staging, command, verdict_of(staging))
        (staging / pool_folder.REPORT).write_text(report)
    return Path(out) / pool_folder.REPORT
