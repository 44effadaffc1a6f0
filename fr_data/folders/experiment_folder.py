"""The experiment folder of ``hardmine experiment``: file names, the results schema, read and write.

Layout of an experiment folder ``EXP`` (what each stage writes is described in
``hardmine.experiment.stages``)::

    EXP/experiment.yaml      the resolved experiment config (a rerun with another config is refused)
    EXP/results.parquet      test packs: one row per (arm, seed, pack), RESULTS_SCHEMA
    EXP/validation.parquet   validation packs, same schema (what hyperparameters were chosen on)
    EXP/estimates.parquet    per split, arm and pack (or pack set): the metric's mean over seeds with its
                             bootstrap interval, and the paired gains over other arms (ESTIMATES_SCHEMA);
                             the verdict is read from it (``hardmine.experiment.verdict``)
    EXP/report.md            tables with intervals, gains over the baseline, times, tuning, verdict
    EXP/figures/*.png        ROC per pack, similarity histograms, gains with intervals

``pack`` is the stem of the pack file (``synth_pose``); ``checkpoint`` the path, relative to ``EXP``, of
the arm's final backbone ``model.pt`` (the training ``config.yaml`` lies beside it). Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from fr_data.io.parquet import read_table, write_table

__all__ = ["CONFIG", "RESULTS", "VALIDATION", "ESTIMATES", "REPORT", "FIGURES", "RESULTS_SCHEMA",
           "ESTIMATES_SCHEMA", "SPLIT_FILES", "results_table", "write_results", "read_results",
           "results_path", "estimates_table", "write_estimates", "read_estimates"]

CONFIG = "experiment.yaml"
RESULTS = "results.parquet"
VALIDATION = "validation.parquet"
ESTIMATES = "estimates.parquet"
REPORT = "report.md"
FIGURES = "figures"
#: Pack split -> the results file of that split.
SPLIT_FILES = {"test": RESULTS, "validation": VALIDATION}

#: One row per (arm, seed, pack) of one split.
RESULTS_SCHEMA = pa.schema([
    pa.field("arm", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("pack", pa.string(), nullable=False),
    pa.field("accuracy", pa.float64(), nullable=False),  # InsightFace 10-fold, flip-sum embeddings
    pa.field("tpr_at_fpr_1e_2", pa.float64()),  # null when the pack has fewer than 100 impostor pairs
    pa.field("tpr_at_fpr_1e_3", pa.float64()),  # null below 1,000 impostor pairs
    pa.field("images_seen", pa.int64(), nullable=False),  # fine-tuning images (composer branches counted)
    pa.field("train_seconds", pa.float64(), nullable=False),
    pa.field("checkpoint", pa.string(), nullable=False),  # relative to EXP
])


#: One row per (split, arm, packs, metric, over): an arm's metric (``over`` null) or its paired gain over the
#: arm ``over``, averaged over ``packs`` and over the fine-tuning seeds, in fractions (0.05 = 5 points).
ESTIMATES_SCHEMA = pa.schema([
    pa.field("split", pa.string(), nullable=False),  # validation | test
    pa.field("arm", pa.string(), nullable=False),  # an arm, or pretrained (the backbone before fine-tuning)
    pa.field("over", pa.string()),  # null: the arm's own metric; else the arm the gain is taken over
    pa.field("packs", pa.list_(pa.string()), nullable=False),  # averaged over these packs (one: that pack)
    pa.field("metric", pa.string(), nullable=False),  # a results column, e.g. tpr_at_fpr_1e_2
    pa.field("value", pa.float64()),  # mean over seeds; null where the metric is undefined
    pa.field("low", pa.float64()),  # percentile bootstrap interval of that mean (pairs resampled, paired
    pa.field("high", pa.float64()),  # between arms) at ``level``
    pa.field("level", pa.float64(), nullable=False),
    pa.field("seed_min", pa.float64()),  # smallest and largest per-seed value
    pa.field("seed_max", pa.float64()),
    pa.field("seeds", pa.int64(), nullable=False),  # fine-tuning seeds averaged
])


def results_path(folder: str | os.PathLike, split: str = "test") -> Path:
    """``EXP/results.parquet`` (test) or ``EXP/validation.parquet``."""
    return Path(folder) / SPLIT_FILES[split]


def results_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (mappings with the schema's columns) as a table sorted by arm, seed and pack; NaN -> null."""
    rows = sorted(rows, key=lambda r: (str(r["arm"]), int(r["seed"]), str(r["pack"])))
    columns = {f.name: [_null_nan(r[f.name]) for r in rows] for f in RESULTS_SCHEMA}
    return pa.table(columns, schema=RESULTS_SCHEMA)


def write_results(folder: str | os.PathLike, rows: Iterable[Mapping[str, Any]],
                  split: str = "test") -> pa.Table:
    """Validate and write the rows of ``split`` atomically; return the written table."""
    return write_table(results_table(rows), results_path(folder, split), RESULTS_SCHEMA)


def read_results(folder: str | os.PathLike, split: str = "test") -> pa.Table:
    """The results of ``split``, validated (SchemaError naming the file when it does not fit)."""
    return read_table(results_path(folder, split), RESULTS_SCHEMA)


def estimates_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows with the estimates schema's columns, sorted by split, arm, over, metric and packs; NaN -> null."""
    rows = sorted(rows, key=lambda r: (str(r["split"]), str(r["arm"]), str(r["over"] or ""), str(r["metric"]),
                                       list(r["packs"])))
    columns = {f.name: [_null_nan(r[f.name]) for r in rows] for f in ESTIMATES_SCHEMA}
    return pa.table(columns, schema=ESTIMATES_SCHEMA)


def write_estimates(folder: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Validate and write ``EXP/estimates.parquet`` atomically; return the written table."""
    return write_table(estimates_table(rows), Path(folder) / ESTIMATES, ESTIMATES_SCHEMA)


def read_estimates(folder: str | os.PathLike) -> pa.Table:
    """``EXP/estimates.parquet``, validated (SchemaError naming the file when it does not fit)."""
    return read_table(Path(folder) / ESTIMATES, ESTIMATES_SCHEMA)


def _null_nan(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value
