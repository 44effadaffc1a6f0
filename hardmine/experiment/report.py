"""``EXP/report.md`` and ``EXP/figures``: per arm and pack the mean over seeds with its bootstrap interval
and seed spread, the gains over ``baseline`` (paired bootstrap), compute and wall time per arm, what was
tuned, and a plain-words verdict on the goal.

The "best DDL arm" of the verdict is chosen on the validation packs (largest mean gain over the hard
packs), then judged on the test packs: the test scores never choose anything.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fr_data.io.atomic import atomic_write_text
from fr_data.folders import experiment_folder as folder
from fr_data.synth import PACKS
from hardmine.experiment import figures
from hardmine.experiment.scoring import METRIC_FPRS, PackScores, attack_pack
from hardmine.experiment.stages import Context, model_name, split_scores
from hardmine.pipelines.stamps import read_stamp
from hardmine.experiment.stats import Draws, Estimate, draw_counts, pack_seed, tpr_draws

__all__ = ["Analysis", "WrittenReport", "write_report", "verdict", "format_estimate"]

BASELINE = "baseline"
PRETRAINED = "pretrained"


@dataclass
class Analysis:
    """Scores of one split, and the bootstrap draws of every (arm, pack, metric), computed on demand."""

    ctx: Context
    split: str
    packs: list[str] = field(default_factory=lambda: [p.name for p in PACKS])
    _runs: dict[str, list[dict[str, PackScores]]] = field(default_factory=dict)
    _counts: dict[str, np.ndarray] = field(default_factory=dict)
    _draws: dict[tuple[str, str, str], Draws] = field(default_factory=dict)

    def runs(self, arm: str) -> list[dict[str, PackScores]]:
        """Per seed (in ``ctx.seeds`` order), the arm's scores on every pack; ``pretrained``: one run."""
        if arm not in self._runs:
            names = [PRETRAINED] if arm == PRETRAINED else [model_name(arm, s) for s in self.ctx.seeds]
            self._runs[arm] = [split_scores(self.ctx, self.split, name) for name in names]
        return self._runs[arm]

    def scored(self, packs: Sequence[str]) -> bool:
        """Whether this split's scores hold every one of ``packs`` (attacked packs may be scored on one split
        only, ``evaluation.attack.splits``)."""
        held = self.runs(self.ctx.arms[0])[0]
        return all(p in held for p in packs)

    def counts(self, pack: str) -> np.ndarray:
        """The bootstrap resamples of a pack (shared by every arm and seed)."""
        if pack not in self._counts:
            n = len(self.runs(self.ctx.arms[0])[0][pack].issame)
            ev = self.ctx.cfg.evaluation
            self._counts[pack] = draw_counts(n, ev.bootstrap, pack_seed(ev.seed, f"{self.split}/{pack}"))
        return self._counts[pack]

    def draws(self, arm: str, pack: str, metric: str) -> Draws:
        """TPR of ``arm`` on ``pack`` at the FPR of ``metric``, per seed and per resample."""
        key = (arm, pack, metric)
        if key not in self._draws:
            runs = self.runs(arm)
            self._draws[key] = tpr_draws([r[pack].scores for r in runs], runs[0][pack].issame,
                                         METRIC_FPRS[metric], self.counts(pack))
        return self._draws[key]

    def gain(self, arm: str, over: str, packs: Sequence[str], metric: str) -> Draws:
        """Mean over ``packs`` of the paired gain of ``arm`` over ``over``."""
        return Draws.mean([self.draws(arm, p, metric) - self.draws(over, p, metric) for p in packs])

    def accuracy(self, arm: str, pack: str) -> np.ndarray:
        """The 10-fold accuracy of every seed (from the scoring stamps)."""
        names = [PRETRAINED] if arm == PRETRAINED else [model_name(arm, s) for s in self.ctx.seeds]
        return np.array([read_stamp(self.ctx.layout.stamp(f"scores-{self.split}-{n}"))["info"][pack]["accuracy"]
                         for n in names])


def format_estimate(est: Estimate, signed: bool = False) -> str:
    """``82.3 [80.1, 84.0] (81.9-82.8)``: percent points, interval, seed range."""
    sign = "+" if signed else ""
    if not np.isfinite(est.value):
        return "n/a"
    text = f"{100 * est.value:{sign}.1f} [{100 * est.low:{sign}.1f}, {100 * est.high:{sign}.1f}]"
    return text + (f" ({100 * est.seed_min:{sign}.1f} to {100 * est.seed_max:{sign}.1f})" if est.seeds > 1 else "")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def results_table(an: Analysis, arms: Sequence[str]) -> list[str]:
    """Per arm and pack: both TPRs with intervals and seed ranges, accuracy mean and range."""
    level = an.ctx.cfg.evaluation.interval
    rows = []
    for arm in arms:
        for pack in an.packs:
            acc = 100 * an.accuracy(arm, pack)
            tprs = [format_estimate(an.draws(arm, pack, m).estimate(level)) for m in METRIC_FPRS]
            rows.append([arm, pack, *tprs, f"{acc.mean():.2f} ({acc.min():.2f}-{acc.max():.2f})"])
    return _table(["arm", "pack", "TPR@FPR=1e-2 (%)", "TPR@FPR=1e-3 (%)", "accuracy (%)"], rows)


def attack_curves(an: Analysis, arms: Sequence[str]) -> dict[str, dict[str, list[tuple[int, Estimate]]]]:
    """Per attacked pack and arm: TPR@FPR=1e-2 at every attack strength (``PACK@pgdE``), mean over seeds."""
    attack, level = an.ctx.cfg.evaluation.attack, an.ctx.cfg.evaluation.interval
    return {pack: {arm: [(eps, an.draws(arm, attack_pack(pack, eps), "tpr_at_fpr_1e_2").estimate(level))
                         for eps in attack.eps] for arm in arms} for pack in attack.packs}


def attack_table(an: Analysis, arms: Sequence[str]) -> list[str]:
    """Per attacked pack and arm: TPR@FPR=1e-2 under attack at each strength."""
    eps = an.ctx.cfg.evaluation.attack.eps
    rows = [[arm, pack, *(format_estimate(est) for _, est in points)]
            for pack, by_arm in attack_curves(an, arms).items() for arm, points in by_arm.items()]
    return _table(["arm", "pack", *(f"eps {e}/255" for e in eps)], rows)


def attack_lines(ctx: Context, an: Analysis) -> list[str]:
    """The report's "under attack" subsection of one split (nothing when no attack was configured)."""
    attack = ctx.cfg.evaluation.attack
    if not attack.eps or an.split not in attack.splits:
        return []
    subset = f"the first {attack.pairs} pairs of each pack" if attack.pairs is not None else "every pair"
    return [f"### Verification under attack ({an.split})", "",
            f"TPR@FPR=1e-2 (%) when the first image of every pair is replaced by its L-inf PGD example "
            f"({attack.steps} steps of eps x {attack.step_ratio}, random start, seed {attack.seed}) against the "
            "cosine of the flip-sum embeddings (genuine pairs pushed apart, impostor pairs together); results "
            f"rows `PACK@pgdE`, on {subset}. Mean over seeds [interval] (seed range).", "", *attack_table(an, ctx.arms), ""]


def gains_table(an: Analysis, arms: Sequence[str], over: str) -> list[str]:
    """Per arm and pack (and the hard-pack mean): paired gains over ``over`` for both TPRs."""
    level, hard = an.ctx.cfg.evaluation.interval, an.ctx.cfg.goal.hard_packs
    rows = []
    for arm in arms:
        means = [("hard-pack mean", hard)] if an.scored(hard) else []
        for label, packs in [*((p, [p]) for p in an.packs), *means]:
            cells = [format_estimate(an.gain(arm, over, packs, m).estimate(level), signed=True)
                     for m in METRIC_FPRS]
            rows.append([arm, label, *cells])
    return _table(["arm", "pack", f"gain TPR@1e-2 over {over} (points)", f"gain TPR@1e-3 over {over} (points)"],
                  rows)


def compute_table(ctx: Context) -> list[str]:
    """Per arm: steps, images per step, images seen, training wall and CPU seconds, images/s and the machine's
    load when the run ended (means over seeds)."""
    rows = []
    for arm in ctx.arms:
        runs = [ctx.runs[(arm, s)] for s in ctx.seeds]
        seconds = np.mean([r["train_seconds"] for r in runs])
        seen = np.mean([r["images_seen"] for r in runs])
        desc = ctx.cfg.arm(arm).description
        cpu = np.mean([r.get("cpu_seconds", np.nan) for r in runs])
        load = np.mean([r.get("load_average", [np.nan] * 3)[1] for r in runs])
        rows.append([arm, desc, runs[0]["steps"], runs[0]["images_per_step"], f"{seen:,.0f}",
                     f"{seconds:.0f}", f"{cpu:.0f}", f"{seen / max(seconds, 1e-9):.0f}", f"{load:.1f}"])
    return _table(["arm", "what it is", "steps", "images/step", "images seen", "wall s", "CPU s", "images/s",
                   "load (5 min)"], rows)


def tuning_table(ctx: Context) -> list[str]:
    """The config's record of what was tuned, over which values, on which packs."""
    rows = [[t.parameter, ", ".join(str(v) for v in t.values), t.chosen, ", ".join(t.arms) or "all",
             t.packs, t.note] for t in ctx.cfg.tuning]
    if not rows:
        return ["Nothing was tuned for this config."]
    return _table(["parameter", "values tried", "chosen", "arms", "packs", "evidence"], rows)


# ------------------------------------------------------------------------------------------ verdict
def best_ddl_arm(an_val: Analysis) -> str | None:
    """The DDL arm with the largest mean hard-pack gain over the baseline on the validation packs."""
    goal = an_val.ctx.cfg.goal
    candidates = [a for a in goal.ddl_arms if a in an_val.ctx.arms]
    if not candidates or BASELINE not in an_val.ctx.arms:
        return None
    if len(candidates) == 1:  # nothing to choose (the validation packs need not hold the goal's packs)
        return candidates[0]
    gains = {a: an_val.gain(a, BASELINE, goal.hard_packs, goal.metric).estimate().value for a in candidates}
    return max(gains, key=gains.get)


def verdict(an_test: Analysis, arm: str) -> tuple[bool, list[str]]:
    """Check the goal on the test packs for ``arm``; return (met, plain-words lines)."""
    goal, level = an_test.ctx.cfg.goal, an_test.ctx.cfg.evaluation.interval
    hard = an_test.gain(arm, BASELINE, goal.hard_packs, goal.metric).estimate(level)
    per_pack = {p: an_test.gain(arm, BASELINE, [p], goal.metric).estimate(level) for p in goal.hard_packs}
    easy = an_test.gain(arm, BASELINE, [goal.easy_pack], goal.metric).estimate(level)
    checks = [(100 * hard.value >= goal.min_gain,
               f"mean hard-pack gain over baseline {format_estimate(hard, True)} points (goal >= +{goal.min_gain})")]
    checks += [(est.value >= 0, f"{p}: {format_estimate(est, True)} points (goal: not worse)")
               for p, est in per_pack.items()]
    checks.append((100 * easy.value >= -goal.easy_tolerance,
                   f"{goal.easy_pack}: {format_estimate(easy, True)} points (goal >= -{goal.easy_tolerance})"))
    if goal.competitor in an_test.ctx.arms:
        comp = an_test.gain(arm, goal.competitor, goal.hard_packs, goal.metric).estimate(level)
        checks.append((100 * comp.value >= goal.min_gain_over,
                       f"mean hard-pack gain over {goal.competitor} {format_estimate(comp, True)} points "
                       f"(goal >= +{goal.min_gain_over})"))
    else:
        checks.append((False, f"{goal.competitor} was not run: the comparison the goal needs is missing"))
    lines = [f"- {'met' if ok else 'NOT met'}: {text}" for ok, text in checks]
    return all(ok for ok, _ in checks), lines


def verdict_section(ctx: Context, analyses: dict[str, Analysis]) -> list[str]:
    """The goal, the arm it is judged on and how that arm was chosen, and the outcome."""
    goal = ctx.cfg.goal
    lines = ["## Verdict", "",
             f"Goal (issue 9, section 4), on the test packs, mean of the seeds, at equal compute: the best DDL "
             f"arm raises {goal.metric} by >= {goal.min_gain} points over `baseline` averaged over "
             f"{', '.join(goal.hard_packs)}, neither hard pack worse, {goal.easy_pack} within "
             f"{goal.easy_tolerance} points, and beats `{goal.competitor}` by >= {goal.min_gain_over} point(s) on "
             f"that average.", ""]
    if "validation" not in analyses or "test" not in analyses:
        return lines + ["No verdict: it needs both the validation packs (to choose the arm) and the test packs."]
    arm = best_ddl_arm(analyses["validation"])
    if arm is None:
        return lines + ["No verdict: it needs `baseline` and at least one of the DDL arms "
                        f"{goal.ddl_arms} among the arms run."]
    met, checks = verdict(analyses["test"], arm)
    lines += [f"Best DDL arm on the validation packs: `{arm}`. On the test packs:", "", *checks, ""]
    lines.append("**The goal is met.**" if met else "**The goal is not met.**")
    lines += ["", "One pretrained backbone: the intervals resample pairs and fine-tuning seeds, not pretraining. "
              "For the spread between backbones, run other draws (`--data-seed S`) and pool the folders with "
              "`tools/experiment_pool.py`."]
    return lines


# ------------------------------------------------------------------------------------------ report
def machine_line() -> str:
    """CPU model, cores and load average where the report was written."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, load average {load} (1, 5, 15 min)"


def draw_figures(ctx: Context, analyses: dict[str, Analysis]) -> list[Path]:
    """Every figure of the report, into ``EXP/figures``; returns their paths."""
    out, paths = ctx.layout.out / folder.FIGURES, []
    level, goal = ctx.cfg.evaluation.interval, ctx.cfg.goal
    for split, an in analyses.items():
        runs = {arm: an.runs(arm) for arm in [PRETRAINED, *ctx.arms]}
        paths.append(figures.roc_figure(runs, an.packs, f"ROC on the {split} packs (mean over seeds)",
                                        out / f"roc_{split}.png"))
        paths.append(figures.anatomy_figure(runs, an.packs, f"Genuine median vs impostor threshold at FPR 1e-2, "
                                            f"{split} packs (labels: TPR %, mean over seeds)",
                                            out / f"anatomy_{split}.png"))
        if BASELINE in ctx.arms and len(ctx.arms) > 1:
            others = [a for a in ctx.arms if a != BASELINE]
            mean = an.scored(goal.hard_packs)
            packs = [*an.packs, *(["hard mean"] if mean else [])]
            gains = {a: {**{p: an.gain(a, BASELINE, [p], goal.metric).estimate(level) for p in an.packs},
                         **({"hard mean": an.gain(a, BASELINE, goal.hard_packs, goal.metric).estimate(level)}
                            if mean else {})}
                     for a in others}
            paths.append(figures.gain_figure(gains, packs, f"{goal.metric} gain over baseline, {split} packs "
                                             f"({level:.0%} bootstrap interval, dots: seed extremes)",
                                             out / f"gain_{split}.png"))
        if ctx.cfg.evaluation.attack.eps and split in ctx.cfg.evaluation.attack.splits:
            curves = {pack: {arm: [(eps, 100 * e.value, 100 * e.low, 100 * e.high) for eps, e in points]
                             for arm, points in by_arm.items()} for pack, by_arm in attack_curves(an, ctx.arms).items()}
            paths.append(figures.attack_figure(curves, f"TPR at FPR 1e-2 under L-inf PGD, {split} packs "
                                               f"(mean over seeds, {level:.0%} bootstrap interval)",
                                               out / f"attack_{split}.png"))
        shown = {"before fine-tuning (pretrained)": an.runs(PRETRAINED)[0]}
        shown.update({f"after: {a} (seed {ctx.seeds[0]})": an.runs(a)[0] for a in (BASELINE, "ddl") if a in ctx.arms})
        held = all(p in scores for scores in shown.values() for p in goal.hard_packs)  # pretrained: never attacked
        hard = goal.hard_packs if held else [p for p in an.packs if p != goal.easy_pack]
        paths.append(figures.similarity_figure(shown, goal.easy_pack, hard,
                                               f"Similarity distributions, {split} packs",
                                               out / f"similarity_{split}.png"))
    return paths


@dataclass(frozen=True)
class WrittenReport:
    """A written report and its verdict section, as computed (what the command prints at the end)."""

    path: Path
    verdict: str


def write_report(ctx: Context, stage_times: dict[str, tuple[float, float]], command: str) -> WrittenReport:
    """Compute every table and figure and write ``EXP/report.md`` (atomically)."""
    analyses = {split: Analysis(ctx, split) for split in ctx.splits}
    paths = draw_figures(ctx, analyses)
    cfg = ctx.cfg
    lines = [f"# Hard-sample experiment ({Path(cfg.source).name}, size {cfg.size})", "",
             f"Command: `{command}`  ", f"Machine: {machine_line()}  ",
             f"Written: {time.strftime('%Y-%m-%d %H:%M:%S')}; arms {ctx.arms}; seeds {ctx.seeds}.", "",
             "## Setup", "", *setup_lines(ctx), "", "### Compute per arm (equal images per seed)", "",
             *compute_table(ctx), "", "Stages of this invocation, wall / CPU seconds (CPU: user + system of "
             "this process and its workers; 0 / small = already complete): "
             + ", ".join(f"{k} {wall:.0f} / {cpu:.0f}" for k, (wall, cpu) in stage_times.items()) + ".", ""]
    for split in ("test", "validation"):
        if split not in analyses:
            continue
        an = analyses[split]
        note = " (scored once per final configuration)" if split == "test" else " (what was tuned on)"
        lines += [f"## Results on the {split} packs{note}", "",
                  f"Mean over seeds [{cfg.evaluation.interval:.0%} bootstrap interval over pairs, "
                  f"{cfg.evaluation.bootstrap} resamples] (min to max over seeds).", "",
                  *results_table(an, [PRETRAINED, *ctx.arms]), ""]
        if BASELINE in ctx.arms and len(ctx.arms) > 1:
            lines += [f"### Gain over baseline ({split})", "", "Paired bootstrap: the same resampled pairs for "
                      "both arms; seed range of the per-seed differences.", "",
                      *gains_table(an, [a for a in ctx.arms if a != BASELINE], BASELINE), ""]
        lines += attack_lines(ctx, an)
    verdict_lines = verdict_section(ctx, analyses)
    lines += ["## What was tuned", "", *tuning_table(ctx), "", *verdict_lines, "", "## Figures", ""]
    lines += [f"![{p.stem}]({folder.FIGURES}/{p.name})" for p in paths]
    path = ctx.layout.out / folder.REPORT
    atomic_write_text(path, "\n".join(lines) + "\n")
    return WrittenReport(path, "\n".join(verdict_lines).rstrip())


def setup_lines(ctx: Context) -> list[str]:
    """The data, packs, pretraining and fine-tuning settings in words."""
    cfg, layout = ctx.cfg, ctx.layout
    synth = read_stamp(layout.stamp("synth"))["info"]
    train = read_stamp(layout.stamp("train"))["info"]
    return [
        f"- training set: {cfg.synth.identities} synthetic identities x {cfg.synth.images_per_identity} images "
        f"(seed {cfg.synth.seed}): {synth.get('num_images')} images, {synth.get('mislabeled')} mislabelled, "
        f"{synth.get('near_duplicates')} near-duplicates, {synth.get('split_identities')} split identities",
        f"- packs: {cfg.packs.pairs} pairs each (half genuine) over {cfg.packs.identities} held-out identities; "
        f"validation seed {cfg.packs.validation_seed}, test seed {cfg.packs.test_seed} (other people than "
        f"the training set's and each other's)",
        f"- pretrained backbone: {cfg.pretrain.config} + overrides {cfg.pretrain.overrides}, "
        f"{train.get('steps')} steps, final loss {train.get('final_loss')}",
        f"- fine-tuning: {cfg.finetune.config} + overrides {cfg.finetune.overrides}; "
        f"{cfg.finetune.images:,} images per arm and seed (tolerance {cfg.finetune.tolerance:.0%})",
        f"- mining: {cfg.mining}",
    ]
