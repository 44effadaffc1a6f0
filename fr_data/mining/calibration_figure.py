"""``calibration.png``: each calibrated distribution with the threshold chosen from it (matplotlib, Agg).

One panel per threshold that has a distribution (a calibrated one; an override is drawn as a line over the
distribution it would have been calibrated from when that distribution was measured).
"""

from __future__ import annotations

import os
from pathlib import Path

from fr_data.folders.run_folder import CALIBRATION_FIGURE_FILE
from fr_data.io.atomic import atomic_write_bytes
from fr_data.mining.calibration import Calibration

FIGURE_FILE = CALIBRATION_FIGURE_FILE

_AXES = {
    "duplicates.cos": ("cosine distance to the nearest neighbour", lambda v: 1.0 - v, True),
    "classes.merge_cos": ("cosine between the centres of two halves of a class", lambda v: v, False),
    "noise.margin_max": ("centre margin of every sample", lambda v: v, True),
}


def draw(calibrations: dict[str, Calibration], path: str | os.PathLike) -> Path | None:
    """Write the figure to ``path`` (atomically); None (nothing written) when no distribution was measured."""
    panels = [c for c in calibrations.values() if c.histogram is not None and c.key in _AXES]
    if not panels:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(panels), 3.2), dpi=100)
    for i, cal in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        xlabel, to_axis, log = _AXES[cal.key]
        counts, edges = cal.histogram
        ax.hist(edges[:-1], bins=edges, weights=counts, color="#8aa", log=log)  # the bars of hist(values, 60)
        if cal.value is not None:
            ax.axvline(to_axis(cal.value), color="#c33", lw=1.5)
        ax.set_title(f"{cal.key} = {_fmt(cal.value)} ({cal.method})", fontsize=8)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(f"count (n = {int(counts.sum())})", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _fmt(value: float | None) -> str:
    return "off" if value is None else f"{value:.4f}"
