"""Chart data of the review page as DuckDB aggregates (counts per bin): memory follows the bins, not the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fr_data.folders.run_folder import SPLITS
from fr_data.query.identifiers import quote_ident
from fr_data.review.select import RunTables

POSE_BINS = ("frontal", "half", "profile")
RESOLUTION_BINS = ("low", "mid", "high")


@dataclass
class Histogram:
    """Counts of a column in equal-width bins, per group (``""`` when not grouped)."""

    edges: np.ndarray
    counts: dict[str, np.ndarray]

    @property
    def total(self) -> int:
        return int(sum(c.sum() for c in self.counts.values()))


def value_range(t: RunTables, view: str, column: str) -> tuple[float, float] | None:
    """Min and max of a column (None when it holds no value)."""
    c, v = quote_ident(column), quote_ident(view)
    lo, hi = t.con.execute(f"SELECT min({c}), max({c}) FROM {v} WHERE isfinite({c})").fetchall()[0]
    return None if lo is None else (float(lo), float(hi))


def histogram(t: RunTables, view: str, column: str, lo: float, hi: float, bins: int, *,
              by: str | None = None, where: str = "true") -> Histogram:
    """Counts of ``column`` in ``bins`` equal bins over ``[lo, hi]`` (values outside go to the end bins),
    per value of ``by``. ``where`` is a fixed SQL predicate of this module, never data."""
    width = (hi - lo) / bins if hi > lo else 1.0
    c, v = quote_ident(column), quote_ident(view)
    group = f"coalesce(CAST({quote_ident(by)} AS VARCHAR), 'none')" if by else "''"
    sql = (f"SELECT {group} AS g, least(greatest(floor(({c} - $lo) / $w), 0), $bins - 1)::INTEGER AS b, "
           f"count(*) AS n FROM {v} WHERE isfinite({c}) AND ({where}) GROUP BY ALL")
    counts: dict[str, np.ndarray] = {}
    for g, b, n in t.con.execute(sql, {"lo": lo, "w": width, "bins": bins}).fetchall():
        counts.setdefault(g, np.zeros(bins, np.int64))[b] += n
    return Histogram(np.linspace(lo, lo + width * bins, bins + 1), counts)


@dataclass
class Stats:
    """Everything the charts draw (empty members mean: no data for that chart)."""

    quality: dict[str, Histogram] = field(default_factory=dict)
    difficulty: Histogram | None = None
    difficulty_bins: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    target_fpr: float | None = None
    similarity: dict[str, Histogram] = field(default_factory=dict)
    pair_cos: Histogram | None = None
    pose_source: str | None = None
    splits: dict[str, int] = field(default_factory=dict)


def quality_histograms(t: RunTables, bins: int = 40) -> dict[str, Histogram]:
    """``quality_cr`` and ``quality_sdd`` over their observed range."""
    out = {}
    for column in ("quality_cr", "quality_sdd"):
        span = value_range(t, "samples", column)
        if span is not None:
            out[column] = histogram(t, "samples", column, *span, bins)
    return out


def similarity_histograms(t: RunTables, bins: int = 50) -> dict[str, Histogram]:
    """Per split: cosine to the own class centre (positive) and to the nearest other centre (negative),
    in the same bins over the range both cover."""
    columns = ("center_cos", "nearest_other_cos")
    spans = [s for s in (value_range(t, "samples", c) for c in columns) if s is not None]
    if not spans:
        return {}
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    return {c: histogram(t, "samples", c, lo, hi, bins, by="split", where="split IS NOT NULL") for c in columns}


def collect(t: RunTables) -> Stats:
    """Aggregate the run for the charts of ``#quality`` and ``#distributions``."""
    s = Stats(quality=quality_histograms(t))
    if value_range(t, "samples", "difficulty") is not None:
        s.difficulty = histogram(t, "samples", "difficulty", 0.0, 1.0, 20, by="split")
    s.difficulty_bins = t.rows(
        "SELECT pose_bin, resolution_bin, avg(difficulty) AS mean, count(*) AS n FROM samples "
        "WHERE isfinite(difficulty) GROUP BY ALL ORDER BY ALL")
    if "groups" in t.present:
        s.groups = t.rows('SELECT "group", source, n_samples, n_classes, fpr, fpr_ratio FROM groups '
                          'ORDER BY "group"')
    s.target_fpr = (t.run.get("thresholds") or {}).get("target_fpr")
    s.pose_source = (t.run.get("bins") or {}).get("pose_source")
    s.similarity = similarity_histograms(t)
    if "pairs" in t.present:
        span = value_range(t, "pairs", "cos")
        s.pair_cos = None if span is None else histogram(t, "pairs", "cos", *span, 50, by="kind")
    counts = dict(t.con.execute("SELECT coalesce(split, 'none'), count(*) FROM samples GROUP BY ALL").fetchall())
    s.splits = {name: int(counts[name]) for name in ordered_splits(list(counts))}
    return s


def ordered_splits(names: list[str]) -> list[str]:
    """Split names in easy, medium, hard order, anything else after."""
    return [s for s in SPLITS if s in names] + sorted(n for n in names if n not in SPLITS)
