"""``EXP/estimates.parquet``, ``EXP/report.md`` and ``EXP/figures``: per arm and pack the mean over seeds
with its bootstrap interval and seed spread, the gains over ``baseline`` (paired bootstrap), compute and
wall time per arm, what was tuned, and a plain-words verdict on the goal.

The estimates are computed once, written to ``EXP/estimates.parquet``, and the report's tables and verdict
are read from that table (the verdict by :func:`hardmine.experiment.verdict.verdict_of`, which the command
prints too).
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
from hardmine.experiment.stats import Draws, Estimate, draw_counts, pack_seed, tpr_draws
from hardmine.experiment.verdict import PRETRAINED, Estimates, format_estimate, verdict_of
from hardmine.pipelines.stamps import read_stamp

__all__ = ["Analysis", "estimate_rows", "write_report"]

BASELINE = "baseline"


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

    @property
    def attacked(self) -> bool:
        """Whether this split was scored under attack (``evaluation.attack``: eps given, split listed)."""
        attack = self.ctx.cfg.evaluation.attack
        return bool(attack.eps) and self.split in attack.splits

    def attacked_packs(self) -> list[str]:
        """The ``PACK@pgdE`` names this split scored (none when it was not scored under attack)."""
        attack = self.ctx.cfg.evaluation.attack
        return [attack_pack(p, e) for p in attack.packs for e in attack.eps] if self.attacked else []

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


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def estimate_rows(an: Analysis) -> list[dict[str, Any]]:
    """The rows of ``EXP/estimates.parquet`` for the split of ``an``: every arm's metrics per pack
    (``pretrained`` included); if ``baseline`` ran, every other arm's paired gains over it per pack and on
    the goal's hard packs together; if the goal's competitor ran, each DDL arm's gain over it on the hard
    packs (what the verdict compares)."""
    ctx, goal, level = an.ctx, an.ctx.cfg.goal, an.ctx.cfg.evaluation.interval
    rows: dict[tuple, dict[str, Any]] = {}

    def add(arm: str, over: str | None, packs: Sequence[str], metric: str, draws: Draws) -> None:
        est = draws.estimate(level)
        rows[(arm, over, tuple(packs), metric)] = {
            "split": an.split, "arm": arm, "over": over, "packs": list(packs), "metric": metric,
            "value": est.value, "low": est.low, "high": est.high, "level": level, "seed_min": est.seed_min,
            "seed_max": est.seed_max, "seeds": est.seeds}

    for arm in [PRETRAINED, *ctx.arms]:
        for pack in an.packs:
            for metric in METRIC_FPRS:
                add(arm, None, [pack], metric, an.draws(arm, pack, metric))
    attacked = an.attacked_packs()
    for arm in ctx.arms:  # the pretrained backbone is not attacked
        for pack in attacked:
            for metric in METRIC_FPRS:
                add(arm, None, [pack], metric, an.draws(arm, pack, metric))
    # a goal on attacked packs is judged on the split(s) that scored them
    hard = [goal.hard_packs] if an.scored(goal.hard_packs) else []
    if BASELINE in ctx.arms:
        for arm in (a for a in ctx.arms if a != BASELINE):
            for packs in [*([p] for p in [*an.packs, *attacked]), *hard]:
                for metric in METRIC_FPRS:
                    add(arm, BASELINE, packs, metric, an.gain(arm, BASELINE, packs, metric))
    if goal.competitor in ctx.arms and hard:
        for arm in (a for a in goal.ddl_arms if a in ctx.arms):
            gain = an.gain(arm, goal.competitor, goal.hard_packs, goal.metric)
            add(arm, goal.competitor, goal.hard_packs, goal.metric, gain)
    return list(rows.values())


def results_table(an: Analysis, est: Estimates, arms: Sequence[str]) -> list[str]:
    """Per arm and pack: both TPRs with intervals and seed ranges, accuracy mean and range."""
    rows = []
    for arm in arms:
        for pack in an.packs:
            acc = 100 * an.accuracy(arm, pack)
            tprs = [format_estimate(est.get(an.split, arm, [pack], m)) for m in METRIC_FPRS]
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
    if not an.attacked:
        return []
    attack = ctx.cfg.evaluation.attack
    subset = f"the first {attack.pairs} pairs of each pack" if attack.pairs is not None else "every pair"
    return [f"### Verification under attack ({an.split})", "",
            f"TPR@FPR=1e-2 (%) when the first image of every pair is replaced by its L-inf PGD example "
            f"({attack.steps} steps of eps x {attack.step_ratio}, random start, seed {attack.seed}) against the "
            "cosine of the flip-sum embeddings (genuine pairs pushed apart, impostor pairs together); results "
            f"rows `PACK@pgdE`, on {subset}. Mean over seeds [interval] (seed range).", "", *attack_table(an, ctx.arms), ""]


def gains_table(an: Analysis, est: Estimates, arms: Sequence[str], over: str) -> list[str]:
    """Per arm and pack (and the hard-pack mean): paired gains over ``over`` for both TPRs."""
    hard = an.ctx.cfg.goal.hard_packs
    rows = []
    for arm in arms:
        means = [("hard-pack mean", hard)] if an.scored(hard) else []
        for label, packs in [*((p, [p]) for p in an.packs), *means]:
            cells = [format_estimate(est.get(an.split, arm, packs, m, over), signed=True)
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
        if an.attacked:
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


def write_report(ctx: Context, stage_times: dict[str, tuple[float, float]], command: str) -> Path:
    """Compute the estimates, write ``EXP/estimates.parquet``, then every figure and ``EXP/report.md``
    (atomically) with the tables and verdict read from the estimates; return the report's path."""
    analyses = {split: Analysis(ctx, split) for split in ctx.splits}
    folder.write_estimates(ctx.layout.out, [row for an in analyses.values() for row in estimate_rows(an)])
    est = Estimates.read(ctx.layout.out)
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
                  *results_table(an, est, [PRETRAINED, *ctx.arms]), ""]
        if BASELINE in ctx.arms and len(ctx.arms) > 1:
            lines += [f"### Gain over baseline ({split})", "", "Paired bootstrap: the same resampled pairs for "
                      "both arms; seed range of the per-seed differences.", "",
                      *gains_table(an, est, [a for a in ctx.arms if a != BASELINE], BASELINE), ""]
        lines += attack_lines(ctx, an)
    lines += ["## What was tuned", "", *tuning_table(ctx), "", *verdict_of(ctx.layout.out).lines, "",
              "## Figures", ""]
    lines += [f"![{p.stem}]({folder.FIGURES}/{p.name})" for p in paths]
    path = ctx.layout.out / folder.REPORT
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


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
