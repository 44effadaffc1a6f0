"""The experiment's figures (matplotlib, Agg backend, PNG): ROC per pack, the similarity histograms of
easy vs hard pairs before and after fine-tuning (the DDL paper's figure on our data), and the gains
over the baseline with their intervals. Arm, pack and model names are shown as written, never read as
math (``literal_text``, ``save_figure``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fr_data.review.figures import literal_text, save_figure  # noqa: E402
from fr_train.evaluation.verification import tpr_at_fpr  # noqa: E402
from hardmine.experiment.scoring import PackScores  # noqa: E402
from hardmine.experiment.stats import Estimate  # noqa: E402

__all__ = ["FPR_GRID", "mean_roc", "roc_figure", "similarity_figure", "gain_figure", "anatomy_figure",
           "genuine_and_threshold", "pool_figure"]

#: FPRs the ROC curves are read at (no interpolation: each point is an empirical ROC point).
FPR_GRID = np.logspace(-3, 0, 61)
#: Model label -> scores per pack, for every seed.
Runs = Mapping[str, Sequence[Mapping[str, PackScores]]]


def mean_roc(runs: Sequence[Mapping[str, PackScores]], pack: str) -> tuple[np.ndarray, np.ndarray]:
    """FPRs reachable with the pack's impostors and the mean TPR over seeds at each."""
    tprs = np.array([tpr_at_fpr(r[pack].scores, r[pack].issame, FPR_GRID).tprs for r in runs])
    ok = ~np.isnan(tprs).any(axis=0)
    return FPR_GRID[ok], tprs[:, ok].mean(axis=0)


def _save(fig: plt.Figure, path: str | os.PathLike) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)  # arm and pack names shown literally, never as math
    plt.close(fig)
    return Path(path)


@literal_text
def attack_figure(curves: Mapping[str, Mapping[str, Sequence[tuple[int, float, float, float]]]], title: str,
                  path: str | os.PathLike) -> Path:
    """TPR against attack strength: one panel per attacked pack, one line per arm through its (eps / 255,
    TPR %) points with the interval as error bars. ``curves``: pack -> arm -> [(eps, value, low, high)]."""
    packs = list(curves)
    fig, axes = plt.subplots(1, len(packs), figsize=(max(8, 5 * len(packs)), 4.2), squeeze=False)
    for ax, pack in zip(axes[0], packs):
        for arm, points in curves[pack].items():
            eps, value, low, high = (np.array(column, dtype=float) for column in zip(*points))
            ax.errorbar(eps, value, yerr=[value - low, high - value], marker="o", capsize=3, label=arm)
        ax.set_title(pack)
        ax.set_xlabel("L-inf PGD strength eps (x 1/255)")
        ax.set_ylabel("TPR at FPR 1e-2 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


@literal_text
def roc_figure(runs: Runs, packs: Sequence[str], title: str, path: str | os.PathLike) -> Path:
    """One panel per pack, one curve per model (mean TPR over seeds at each FPR)."""
    fig, axes = plt.subplots(1, len(packs), figsize=(5 * len(packs), 4.2), squeeze=False)
    for ax, pack in zip(axes[0], packs):
        for label, model_runs in runs.items():
            fpr, tpr = mean_roc(model_runs, pack)
            style = {"linestyle": "--", "color": "grey"} if label == "pretrained" else {}
            ax.plot(fpr, tpr, label=f"{label} ({len(model_runs)} seed{'s' * (len(model_runs) > 1)})", **style)
        ax.set_xscale("log")
        ax.set_xlim(FPR_GRID[0], 1)
        ax.axvline(1e-2, color="black", linewidth=0.5, linestyle=":")
        ax.set_title(pack)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _hist(ax: plt.Axes, values: np.ndarray, label: str, **style) -> None:
    ax.hist(values, bins=np.linspace(-0.4, 1.0, 57), histtype="step", density=True, label=label, **style)


@literal_text
def similarity_figure(models: Mapping[str, Mapping[str, PackScores]], easy: str, hard: Sequence[str],
                      title: str, path: str | os.PathLike) -> Path:
    """Rows = models (e.g. pretrained, baseline, ddl), columns = hard packs: the genuine and impostor
    cosine distributions of the easy pack against those of the hard pack."""
    fig, axes = plt.subplots(len(models), len(hard), figsize=(5.5 * len(hard), 3.0 * len(models)),
                             squeeze=False, sharex=True)
    for row, (label, packs) in zip(axes, models.items()):
        for ax, pack in zip(row, hard):
            e, h = packs[easy], packs[pack]
            _hist(ax, e.scores[e.issame], f"{easy} genuine", color="tab:blue")
            _hist(ax, e.scores[~e.issame], f"{easy} impostor", color="tab:blue", linestyle="--")
            _hist(ax, h.scores[h.issame], f"{pack} genuine", color="tab:red")
            _hist(ax, h.scores[~h.issame], f"{pack} impostor", color="tab:red", linestyle="--")
            gap = np.median(e.scores[e.issame]) - np.median(h.scores[h.issame])
            ax.set_title(f"{label}\n{easy} vs {pack}: genuine median gap {gap:.3f}", fontsize=8)
            ax.legend(fontsize=6, loc="upper left")
    for ax in axes[-1]:
        ax.set_xlabel("cosine similarity")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


@literal_text
def gain_figure(gains: Mapping[str, Mapping[str, Estimate]], packs: Sequence[str], title: str,
                path: str | os.PathLike, ylabel: str = "gain over baseline (TPR points)") -> Path:
    """Grouped bars: per pack (and their hard-pack mean, if given as a pack), one bar per arm, with the
    95% bootstrap interval as error bar and the per-seed extremes as dots."""
    cells = {arm: {p: (100 * e.value, 100 * e.low, 100 * e.high, [100 * e.seed_min, 100 * e.seed_max])
                   for p, e in by_pack.items()} for arm, by_pack in gains.items()}
    return pool_figure(cells, packs, title, path, ylabel)


@literal_text
def pool_figure(gains: Mapping[str, Mapping[str, tuple[float, float, float, Sequence[float]]]],
                packs: Sequence[str], title: str, path: str | os.PathLike,
                ylabel: str = "gain over baseline (TPR points)") -> Path:
    """Grouped bars from (value, low, high, dots) per arm and pack, in points: per pack one bar per arm, the
    interval as error bar, every dot drawn (seed extremes, or one per pretrained backbone when pooled)."""
    arms = list(gains)
    width = 0.8 / max(1, len(arms))
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.45 * len(packs) * max(1, len(arms)) + 3)), 4.6))
    x = np.arange(len(packs))
    for i, arm in enumerate(arms):
        cells = [gains[arm][p] for p in packs]
        pos = x - 0.4 + width * (i + 0.5)
        values = np.array([c[0] for c in cells])
        err = np.nan_to_num(np.array([[c[0] - c[1] for c in cells], [c[2] - c[0] for c in cells]]))
        ax.bar(pos, values, width, yerr=np.maximum(err, 0), capsize=3, label=arm)
        ax.scatter(np.concatenate([np.full(len(c[3]), q) for q, c in zip(pos, cells)]),
                   np.concatenate([np.asarray(c[3], float) for c in cells]), s=7, color="black", zorder=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, packs)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def genuine_and_threshold(pack: PackScores, fpr: float = 1e-2) -> tuple[float, float]:
    """Median genuine cosine of a pack and the cosine its impostors exceed at rate ``fpr`` (the threshold
    TPR at that FPR is read at)."""
    roc = tpr_at_fpr(pack.scores, pack.issame, [fpr])
    return float(np.median(pack.scores[pack.issame])), float(roc.thresholds[0])


@literal_text
def anatomy_figure(runs: Runs, packs: Sequence[str], title: str, path: str | os.PathLike,
                   fpr: float = 1e-2) -> Path:
    """Why TPR at a low FPR moves: per pack, each model (mean over seeds) as a point at (median genuine
    cosine, impostor threshold at ``fpr``), labelled with its TPR. Distribution losses move genuine pairs
    to the right; TPR rises only if the impostors' tail (upwards) does not follow."""
    fig, axes = plt.subplots(1, len(packs), figsize=(5 * len(packs), 4.2), squeeze=False)
    for ax, pack in zip(axes[0], packs):
        for label, model_runs in runs.items():
            points = np.array([genuine_and_threshold(r[pack], fpr) for r in model_runs])
            tpr = np.mean([tpr_at_fpr(r[pack].scores, r[pack].issame, [fpr]).tprs[0] for r in model_runs])
            x, y = points.mean(axis=0)
            ax.scatter(x, y, s=30, marker="s" if label == "pretrained" else "o")
            ax.annotate(f"{label} {100 * tpr:.1f}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(pack)
        ax.set_xlabel("median genuine cosine")
        ax.set_ylabel(f"impostor cosine at FPR {fpr:g}")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
