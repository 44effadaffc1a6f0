"""Charts of the review page as PNG files (matplotlib's Agg canvas, no pyplot state, no display needed).

Each chart function returns a Figure, or None when there is no data (the page then says so). Every chart
has a title, axis labels and units. Charts of any data render: a run of one identity or one image has
NaN rates and empty histograms, which are left out, never passed to an axis. Every text is shown as
written (:func:`save_figure`): a group or arm name such as ``$\\frac{x$`` is not read as math.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from fr_data.folders.report_folder import figure_name
from fr_data.folders.run_folder import CALIBRATION_FIGURE_FILE
from fr_data.io.atomic import atomic_write_bytes, naming_write_errors
from fr_data.review.stats import POSE_BINS, RESOLUTION_BINS, Histogram, Stats, ordered_splits

SPLIT_COLOURS = {"easy": "#2a9d8f", "medium": "#e9c46a", "hard": "#e76f51", "none": "#999999"}
KIND_COLOURS = {"easy_pos": "#2a9d8f", "hard_pos": "#e76f51", "hard_neg": "#457b9d"}
DPI = 110
#: matplotlib settings under which text is never parsed as math or handed to TeX.
LITERAL_TEXT = {"text.parse_math": False, "text.usetex": False}


def save_figure(fig: Figure, path: str | os.PathLike, **kwargs: Any) -> None:
    """``fig.savefig(path)`` with every text shown literally: the texts made so far are switched off math
    parsing, and those made while drawing (tick labels) are made under :data:`LITERAL_TEXT`. A full disk
    is a WriteError naming ``path``."""
    with matplotlib.rc_context(LITERAL_TEXT), naming_write_errors(path):
        for text in fig.findobj(Text):
            text.set_parse_math(False)
        fig.savefig(path, **kwargs)


def literal_text(draw: Callable[..., Any]) -> Callable[..., Any]:
    """Run a figure-drawing function under :data:`LITERAL_TEXT`, so every text it makes (and measures, as
    ``tight_layout`` does) is shown as written."""
    @functools.wraps(draw)
    def drawing(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(LITERAL_TEXT):
            return draw(*args, **kwargs)
    return drawing


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def _figure(width: float = 6.4, height: float = 3.6, cols: int = 1, sharey: bool = True) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, cols, sharey=sharey and cols > 1, squeeze=False)[0]
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_axisbelow(True)
    return fig, list(axes)


def _bars(ax, hist: Histogram, names: list[str], colours: dict[str, str], stacked: bool) -> None:
    centres = (hist.edges[:-1] + hist.edges[1:]) / 2
    width = hist.edges[1] - hist.edges[0]
    bottom = np.zeros(len(centres))
    for name in names:
        counts = hist.counts.get(name, np.zeros(len(centres)))
        if stacked:
            ax.bar(centres, counts, width=width, bottom=bottom, color=colours.get(name), label=name,
                   edgecolor="white", linewidth=0.3)
            bottom = bottom + counts
        else:
            ax.step(hist.edges, np.r_[counts, counts[-1:]], where="post", color=colours.get(name), label=name)


def quality_chart(stats: Stats) -> Figure | None:
    """Histograms of the two quality scores, side by side."""
    if not stats.quality:
        return None
    fig, axes = _figure(8.0, 3.4, cols=len(stats.quality))
    units = {"quality_cr": ("CR-FIQA certainty ratio (higher = better)", "quality_cr"),
             "quality_sdd": ("SDD-FIQA score, 0-100 (higher = better)", "quality_sdd")}
    for ax, (column, hist) in zip(axes, stats.quality.items()):
        _bars(ax, hist, [""], {"": "#457b9d"}, stacked=True)
        ax.set_xlabel(units[column][0])
        ax.set_title(units[column][1])
    axes[0].set_ylabel("samples")
    fig.suptitle("Image quality of all samples")
    return fig


def difficulty_chart(stats: Stats) -> Figure | None:
    """Histogram of difficulty, stacked by split."""
    if stats.difficulty is None:
        return None
    fig, (ax,) = _figure()
    _bars(ax, stats.difficulty, ordered_splits(list(stats.difficulty.counts)), SPLIT_COLOURS, stacked=True)
    ax.set(title="Difficulty of all samples, by split", xlabel="difficulty (0 = easiest, 1 = hardest)",
           ylabel="samples")
    ax.legend(title="split")
    return fig


def difficulty_bins_chart(stats: Stats) -> Figure | None:
    """Mean difficulty per pose bin and resolution bin (a heat map with the sample count in each cell)."""
    if not stats.difficulty_bins:
        return None
    poses = [p for p in POSE_BINS if any(r["pose_bin"] == p for r in stats.difficulty_bins)] or ["?"]
    resolutions = [r for r in RESOLUTION_BINS if any(x["resolution_bin"] == r for x in stats.difficulty_bins)]
    resolutions = resolutions or ["?"]
    mean = np.full((len(poses), len(resolutions)), np.nan)
    count = np.zeros_like(mean)
    for r in stats.difficulty_bins:
        i = poses.index(r["pose_bin"]) if r["pose_bin"] in poses else None
        j = resolutions.index(r["resolution_bin"]) if r["resolution_bin"] in resolutions else None
        if i is not None and j is not None:
            mean[i, j], count[i, j] = r["mean"], r["n"]
    fig, (ax,) = _figure(5.6, 3.6)
    ax.grid(False)
    image = ax.imshow(mean, cmap="magma_r", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(mean):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}\n{int(count[i, j])} samples", ha="center", va="center", fontsize=8,
                    color="white" if v > 0.55 else "black")
    ax.set_xticks(range(len(resolutions)), resolutions)
    ax.set_yticks(range(len(poses)), poses)
    ax.set(title="Mean difficulty by pose and resolution bin", xlabel="resolution bin (effective resolution)",
           ylabel=f"pose bin (from {stats.pose_source or 'yaw or flip consistency'})")
    fig.colorbar(image, ax=ax, label="mean difficulty (0-1)")
    return fig


def group_fpr_chart(stats: Stats) -> Figure | None:
    """False positive rate per group at the one global threshold, with the overall target as a line."""
    rows = [g for g in stats.groups if _finite(g["fpr"])]  # NaN: a group without negatives (one identity)
    if not rows:
        return None
    fig, (ax,) = _figure(6.4, max(2.4, 0.35 * len(rows) + 1.2))
    names, fpr = [str(g["group"]) for g in rows], [g["fpr"] for g in rows]
    bars = ax.barh(names, fpr, color="#457b9d")
    ax.bar_label(bars, labels=[f"{v:.2g} (x{g['fpr_ratio']:.2f})" if _finite(g["fpr_ratio"]) else f"{v:.2g}"
                               for v, g in zip(fpr, rows)], padding=3, fontsize=8)
    target = stats.target_fpr if _finite(stats.target_fpr) else None
    ax.set_xlim(0, 1.3 * max(fpr + [target or 0.0]) or 1e-4)
    if target is not None:
        ax.axvline(target, color="#e76f51", linestyle="--", label=f"overall target {target:g}")
        ax.legend(loc="lower right")
    ax.invert_yaxis()
    source = rows[0].get("source", "")
    ax.set(title=f"False positive rate per group ({source})",
           xlabel="FPR at the unified threshold (share of negatives above it)", ylabel="group")
    return fig


def similarity_chart(stats: Stats) -> Figure | None:
    """Per split: cosine to the own class centre (positive) vs to the nearest other centre (negative)."""
    pos, neg = stats.similarity.get("center_cos"), stats.similarity.get("nearest_other_cos")
    if pos is None or neg is None or pos.total + neg.total == 0:
        return None
    splits = ordered_splits(sorted(set(pos.counts) | set(neg.counts)))
    fig, axes = _figure(9.0, 3.2, cols=len(splits), sharey=False)  # own scale: the hard split is small
    for ax, split in zip(axes, splits):
        for hist, name, colour in ((pos, "positive: own centre", "#2a9d8f"),
                                   (neg, "negative: nearest other centre", "#e76f51")):
            counts = hist.counts.get(split, np.zeros(len(hist.edges) - 1))
            ax.stairs(counts, hist.edges, color=colour, fill=True, alpha=0.45, label=name)
        n = int(pos.counts.get(split, np.zeros(1)).sum())
        ax.set(title=f"split {split} ({n:,} samples)", xlabel="cosine similarity")
    axes[0].set_ylabel("samples")
    axes[-1].legend(fontsize=8)
    fig.suptitle("Positive and negative similarities per split")
    return fig


def pairs_chart(stats: Stats) -> Figure | None:
    """Cosine of the mined pairs, by kind."""
    hist = stats.pair_cos
    if hist is None or hist.total == 0:
        return None
    fig, (ax,) = _figure()
    for kind in [k for k in KIND_COLOURS if k in hist.counts]:
        ax.stairs(hist.counts[kind], hist.edges, color=KIND_COLOURS[kind], fill=True, alpha=0.45, label=kind)
    ax.set(title="Cosine of the mined pairs (pairs.parquet)", xlabel="cosine similarity", ylabel="pairs")
    ax.legend(title="kind")
    return fig


#: Chart name -> drawing function (None when there is nothing to draw).
CHARTS: dict[str, Callable[[Stats], Figure | None]] = {
    "quality": quality_chart,
    "difficulty": difficulty_chart,
    "difficulty_bins": difficulty_bins_chart,
    "group_fpr": group_fpr_chart,
    "similarity": similarity_chart,
    "pairs": pairs_chart,
}


def copy_calibration(run: Path, folder: Path) -> dict[str, str]:
    """Copy the mining run's calibration figure (``calibration.png``, drawn by ``hardmine mine``) into
    ``folder``'s figures; ``{"calibration": path relative to folder}``, or empty when the run has none."""
    source = run / CALIBRATION_FIGURE_FILE
    if not source.is_file():
        return {}
    name = figure_name("calibration")
    atomic_write_bytes(folder / name, source.read_bytes())
    return {"calibration": name}


def draw_all(stats: Stats, folder: Path) -> dict[str, str]:
    """Draw every chart that has data into ``folder``; return chart name -> path relative to it."""
    drawn = {}
    for name, draw in CHARTS.items():
        with matplotlib.rc_context(LITERAL_TEXT):
            fig = draw(stats)
        if fig is not None:
            drawn[name] = figure_name(name)
            save_figure(fig, folder / drawn[name])
    return drawn
