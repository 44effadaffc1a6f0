"""Score a mining run against the ground truth of a synthetic data set (issue 3, point 6).

A mining run (``hardmine mine``) labels every sample: suspected mislabel, near-duplicate of a kept
twin, its class a merge candidate, its difficulty split, its resolution estimate and flip consistency.
A synthetic data set (``hardmine synth``) knows the truth of each of these in ``attributes.parquet``,
keyed by the RecordIO ``source_index``; the shard manifest ``samples.parquet`` maps sample keys to
source indices. :func:`score_run` joins the three and measures:

* **mislabels**: precision / recall of ``suspect_mislabel`` against ``mislabeled`` (the stored label
  belongs to another identity; this includes cross-class near-duplicates).
* **duplicates**: a flagged sample (``duplicate_of`` set) is correct when it and its kept twin share a
  ground-truth duplicate group (an original image and all its copies). Recall counts, per group of
  ``g`` images, how many of the ``g - 1`` redundant images were flagged correctly (at most ``g - 1``),
  i.e. "drop all but one of each group".
* **merge candidates**: labels that belong to one identity (split identities) are true merge pairs; a
  class flagged ``merge_candidate`` predicts the unordered pair ``(label, nearest_label)``.
* **hard split enrichment**: share of truly hard images (``|yaw| >= 60`` degrees or ``scale <= 1/4``)
  in the ``hard`` split divided by their share among all samples that received a split. Its ceiling is
  ``1 / base rate``: when more than a third of the images are truly hard, 3x is out of reach.
* **resolution**: Spearman rank correlation of the image-based ``resolution`` estimate with the true
  ``scale``; **pose proxy**: Spearman of ``flip_cos`` with ``|yaw|`` (negative when the proxy works:
  profile faces are less mirror-symmetric).

Spearman's rho is computed here with average ranks for ties (the true scale has only four values), so
fr_data needs no scipy at run time.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fr_data.folders import run_folder as rf
from fr_data.folders.shard_folder import SAMPLES_SCHEMA
from fr_data.io.errors import DataError
from fr_data.io.parquet import read_table
from fr_data.mining.ranks import average_ranks
from fr_data.synth.dataset import ATTRIBUTES_SCHEMA

__all__ = ["HARD_YAW", "HARD_SCALE", "TARGETS", "Detection", "Enrichment", "GroundTruthReport", "detection",
           "duplicate_detection", "merge_detection", "hard_enrichment", "truly_hard", "spearman",
           "score_run", "score_tables", "format_report", "check_targets"]

HARD_YAW = 60.0  # |yaw| at or above this is a truly hard pose (degrees)
HARD_SCALE = 0.25  # scale (1 / downsample) at or below this is a truly hard resolution

#: The issue's quality targets: metric name -> minimum value.
TARGETS: dict[str, float] = {
    "mislabel_precision": 0.9, "mislabel_recall": 0.8,
    "duplicate_precision": 0.95, "duplicate_recall": 0.95,
    "merge_recall": 0.9, "hard_enrichment": 3.0, "resolution_spearman": 0.8,
}

_MINED_COLUMNS = ["key", "label", "suspect_mislabel", "duplicate_of", "split", "resolution", "flip_cos"]
_CLASS_COLUMNS = ["label", "merge_candidate", "nearest_label"]
_TRUTH_COLUMNS = ["source_index", "label", "label_identity", "mislabeled", "duplicate_of", "yaw", "scale"]


@dataclass(frozen=True)
class Detection:
    """Counts of a detector against the truth.

    Attributes:
        true_positives: detections that are right.
        predicted: detections made.
        actual: true cases (the recall denominator).
        found: true cases found (the recall numerator; equals ``true_positives`` for one-to-one items).
    """

    true_positives: int
    predicted: int
    actual: int
    found: int

    @property
    def precision(self) -> float:
        """Share of detections that are right (NaN when nothing was detected)."""
        return self.true_positives / self.predicted if self.predicted else math.nan

    @property
    def recall(self) -> float:
        """Share of true cases found (NaN when there are none)."""
        return self.found / self.actual if self.actual else math.nan


@dataclass(frozen=True)
class Enrichment:
    """How much richer in truly hard images the ``hard`` split is than the whole.

    Attributes:
        hard_share: share of truly hard images in the ``hard`` split.
        base_rate: share of truly hard images among all samples with a split.
        hard_rows: size of the ``hard`` split.
        rows: samples with a split.
    """

    hard_share: float
    base_rate: float
    hard_rows: int
    rows: int

    @property
    def ratio(self) -> float:
        """``hard_share / base_rate`` (NaN when undefined)."""
        return self.hard_share / self.base_rate if self.base_rate > 0 else math.nan

    @property
    def ceiling(self) -> float:
        """The largest reachable ratio, ``1 / base_rate`` (a hard split holding only truly hard images)."""
        return 1.0 / self.base_rate if self.base_rate > 0 else math.nan


@dataclass(frozen=True)
class GroundTruthReport:
    """Every figure of :func:`score_run` (see the module docstring)."""

    rows: int
    mislabel: Detection
    duplicates: Detection
    merge: Detection
    hard: Enrichment
    resolution_spearman: float
    pose_spearman: float

    def metrics(self) -> dict[str, float]:
        """Flat ``name -> value`` figures (the names of :data:`TARGETS` plus a few more)."""
        return {
            "mislabel_precision": self.mislabel.precision, "mislabel_recall": self.mislabel.recall,
            "duplicate_precision": self.duplicates.precision, "duplicate_recall": self.duplicates.recall,
            "merge_precision": self.merge.precision, "merge_recall": self.merge.recall,
            "hard_enrichment": self.hard.ratio, "hard_enrichment_ceiling": self.hard.ceiling,
            "hard_share": self.hard.hard_share,
            "hard_base_rate": self.hard.base_rate, "resolution_spearman": self.resolution_spearman,
            "pose_spearman": self.pose_spearman,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the flat metrics, the raw counts and the targets met."""
        counts = {name: asdict(getattr(self, name)) for name in ("mislabel", "duplicates", "merge", "hard")}
        return {"rows": self.rows, "metrics": _json_floats(self.metrics()), "counts": counts,
                "targets_met": check_targets(self.metrics())}


# ------------------------------------------------------------------------------------- pure measures
def detection(predicted: np.ndarray, actual: np.ndarray) -> Detection:
    """Binary detector counts from two boolean arrays of equal length."""
    predicted, actual = np.asarray(predicted, bool), np.asarray(actual, bool)
    if predicted.shape != actual.shape:
        raise ValueError(f"predicted {predicted.shape} and actual {actual.shape} differ in shape")
    tp = int((predicted & actual).sum())
    return Detection(tp, int(predicted.sum()), int(actual.sum()), tp)


def duplicate_detection(twin: np.ndarray, group: np.ndarray) -> Detection:
    """Near-duplicate detection scored by duplicate group (see the module docstring).

    Args:
        twin: ``(n,)`` row of the kept twin of each flagged row, -1 for rows not flagged.
        group: ``(n,)`` ground-truth group id of each row (an original and its copies share one id).
    """
    twin, group = np.asarray(twin, np.int64), np.asarray(group)
    flagged = np.flatnonzero(twin >= 0)
    right = flagged[group[flagged] == group[twin[flagged]]]
    ids, sizes = np.unique(group, return_counts=True)
    redundant = dict(zip(ids.tolist(), (sizes - 1).tolist()))
    got_ids, got = np.unique(group[right], return_counts=True)
    found = sum(min(int(c), redundant[g]) for g, c in zip(got_ids.tolist(), got.tolist()))
    return Detection(len(right), len(flagged), int((sizes - 1).sum()), found)


def merge_detection(labels: np.ndarray, flagged: np.ndarray, nearest: np.ndarray,
                    identity_of_label: dict[int, int]) -> Detection:
    """Merge-candidate detection over unordered label pairs.

    Args:
        labels: ``(C,)`` class labels of the mining run.
        flagged: ``(C,)`` bool, ``merge_candidate``.
        nearest: ``(C,)`` nearest other label (-1 when none).
        identity_of_label: true identity of every label.
    """
    predicted = {tuple(sorted((int(a), int(b)))) for a, b, f in zip(labels, nearest, flagged) if f and b >= 0}
    by_identity: dict[int, list[int]] = {}
    for label, ident in identity_of_label.items():
        by_identity.setdefault(ident, []).append(label)
    truth = {(a, b) for group in by_identity.values() for i, a in enumerate(sorted(group))
             for b in sorted(group)[i + 1:]}
    right = len(predicted & truth)
    return Detection(right, len(predicted), len(truth), right)


def truly_hard(yaw: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``|yaw| >= 60`` degrees or ``scale <= 1/4`` (the issue's definition of a truly hard image)."""
    return (np.abs(np.asarray(yaw)) >= HARD_YAW) | (np.asarray(scale) <= HARD_SCALE)


def hard_enrichment(split: np.ndarray, hard: np.ndarray) -> Enrichment:
    """Enrichment of the ``hard`` split in truly hard images.

    Args:
        split: ``(n,)`` object array of ``easy`` / ``medium`` / ``hard`` / None.
        hard: ``(n,)`` bool, truly hard.
    """
    split, hard = np.asarray(split, dtype=object), np.asarray(hard, bool)
    has = np.array([s is not None for s in split], bool)
    in_hard = split == "hard"
    base = float(hard[has].mean()) if has.any() else math.nan
    share = float(hard[in_hard].mean()) if in_hard.any() else math.nan
    return Enrichment(share, base, int(in_hard.sum()), int(has.sum()))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation over the pairs where both values are finite (NaN if undefined)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    rx, ry = average_ranks(x[ok]), average_ranks(y[ok])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else math.nan


# ---------------------------------------------------------------------------------------- the join
def _positions(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Index of each value in ``reference`` (unique values), -1 where absent."""
    out = np.full(len(values), -1, np.int64)
    if len(reference) == 0 or len(values) == 0:
        return out
    order = np.argsort(reference, kind="stable")
    hit = order[np.minimum(np.searchsorted(reference, values, sorter=order), len(reference) - 1)]
    return np.where(reference[hit] == values, hit, -1)


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.to_pylist(), dtype=str)


def _filled(column: pa.ChunkedArray, value: int = -1) -> np.ndarray:
    """An integer column as int64 with nulls replaced by ``value``."""
    return pc.fill_null(column, value).to_numpy().astype(np.int64)


def _truth_rows(mined: pa.Table, manifest: pa.Table, truth: pa.Table, paths: tuple[Path, Path, Path]
                ) -> np.ndarray:
    """For each mined row, the row of ``truth`` describing the same image (errors name file and key)."""
    run_path, manifest_path, truth_path = paths
    keys = _strings(mined.column("key"))
    at = _positions(keys, _strings(manifest.column("key")))
    if (at < 0).any():
        raise DataError(manifest_path, f"key {keys[np.argmax(at < 0)]}",
                        f"sample of {run_path} missing from the shard manifest")
    source = manifest.column("source_index").to_numpy()[at]
    rows = _positions(source, truth.column("source_index").to_numpy())
    if (rows < 0).any():
        bad = int(np.argmax(rows < 0))
        raise DataError(truth_path, f"source_index {source[bad]}", f"no ground truth for sample {keys[bad]}")
    stored = truth.column("label").to_numpy()[rows]
    mismatch = np.flatnonzero(stored != mined.column("label").to_numpy())
    if len(mismatch):
        i = int(mismatch[0])
        raise DataError(truth_path, f"source_index {source[i]}",
                        f"label {stored[i]} differs from the mined label of sample {keys[i]}")
    return rows


def _duplicate_groups(truth: pa.Table, rows: np.ndarray) -> np.ndarray:
    """Ground-truth duplicate group (the original's source index) of each mined row."""
    original = _filled(truth.column("duplicate_of"))
    return np.where(original >= 0, original, truth.column("source_index").to_numpy())[rows]


def _twins(mined: pa.Table) -> np.ndarray:
    """Row of the kept twin of each flagged mined row, -1 elsewhere."""
    keys = _strings(mined.column("key"))
    flagged = pc.is_valid(mined.column("duplicate_of")).to_numpy(zero_copy_only=False)
    twin = np.full(len(keys), -1, np.int64)
    twin[flagged] = _positions(_strings(pc.drop_null(mined.column("duplicate_of"))), keys)
    return twin


def score_tables(mined: pa.Table, classes: pa.Table, truth: pa.Table,
                 truth_rows: np.ndarray) -> GroundTruthReport:
    """Score mined tables against ground-truth rows already aligned to them (``truth_rows[i]`` = row of
    ``truth`` describing mined row ``i``)."""
    t = truth.take(pa.array(truth_rows))
    label_identity = dict(zip(truth.column("label").to_pylist(), truth.column("label_identity").to_pylist()))
    resolution = mined.column("resolution").to_numpy(zero_copy_only=False).astype(np.float64)
    flip_cos = mined.column("flip_cos").to_numpy(zero_copy_only=False).astype(np.float64)
    yaw, scale = t.column("yaw").to_numpy(), t.column("scale").to_numpy()
    return GroundTruthReport(
        rows=mined.num_rows,
        mislabel=detection(mined.column("suspect_mislabel").to_numpy(zero_copy_only=False),
                           t.column("mislabeled").to_numpy(zero_copy_only=False)),
        duplicates=duplicate_detection(_twins(mined), _duplicate_groups(truth, truth_rows)),
        merge=merge_detection(classes.column("label").to_numpy(),
                              classes.column("merge_candidate").to_numpy(zero_copy_only=False),
                              _filled(classes.column("nearest_label")), label_identity),
        hard=hard_enrichment(np.asarray(mined.column("split").to_pylist(), dtype=object),
                             truly_hard(yaw, scale)),
        resolution_spearman=spearman(resolution, scale),
        pose_spearman=spearman(flip_cos, np.abs(yaw)),
    )


def score_run(run: str | os.PathLike, attributes: str | os.PathLike,
              manifest: str | os.PathLike) -> GroundTruthReport:
    """Score the mining run folder ``run`` against synthetic ground truth.

    Args:
        run: mining run folder (``samples.parquet``, ``classes.parquet``).
        attributes: the synthetic data set's ``attributes.parquet``.
        manifest: the shard manifest ``samples.parquet`` (sample key -> source index).

    Raises:
        DataError: a mined sample missing from the manifest or the ground truth, or whose label differs.
    """
    run, attributes, manifest = Path(run), Path(attributes), Path(manifest)
    mined = rf.read(run, "samples", columns=_MINED_COLUMNS)
    classes = rf.read(run, "classes", columns=_CLASS_COLUMNS)
    shard_rows = read_table(manifest, SAMPLES_SCHEMA, columns=["key", "source_index"])
    truth = read_table(attributes, ATTRIBUTES_SCHEMA, columns=_TRUTH_COLUMNS)
    rows = _truth_rows(mined, shard_rows, truth, (rf.table_path(run, "samples"), manifest, attributes))
    return score_tables(mined, classes, truth, rows)


# -------------------------------------------------------------------------------------------- report
def check_targets(metrics: dict[str, float], targets: dict[str, float] = TARGETS) -> dict[str, bool]:
    """``name -> value >= target`` for every target (NaN never meets one)."""
    return {name: bool(np.isfinite(metrics.get(name, math.nan)) and metrics[name] >= goal)
            for name, goal in targets.items()}


def _json_floats(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if not np.isfinite(v) else round(float(v), 4)) for k, v in values.items()}


def format_report(report: GroundTruthReport, targets: dict[str, float] = TARGETS) -> str:
    """A text table: metric, value, target, met, and the counts behind it."""
    counts = {
        "mislabel_precision": f"{report.mislabel.true_positives}/{report.mislabel.predicted}",
        "mislabel_recall": f"{report.mislabel.found}/{report.mislabel.actual}",
        "duplicate_precision": f"{report.duplicates.true_positives}/{report.duplicates.predicted}",
        "duplicate_recall": f"{report.duplicates.found}/{report.duplicates.actual}",
        "merge_precision": f"{report.merge.true_positives}/{report.merge.predicted}",
        "merge_recall": f"{report.merge.found}/{report.merge.actual}",
        "hard_enrichment": f"{report.hard.hard_share:.3f}/{report.hard.base_rate:.3f}",
    }
    met = check_targets(report.metrics(), targets)
    lines = [f"{'metric':<22} {'value':>8} {'target':>8}  {'met':<4} counts",
             f"{'-' * 22} {'-' * 8} {'-' * 8}  {'-' * 4} {'-' * 12}"]
    for name, value in report.metrics().items():
        if name in ("hard_share", "hard_base_rate"):
            continue
        goal = f">= {targets[name]:g}" if name in targets else ""
        flag = ("yes" if met[name] else "NO") if name in targets else ""
        lines.append(f"{name:<22} {value:>8.3f} {goal:>8}  {flag:<4} {counts.get(name, '')}".rstrip())
    return "\n".join(lines)
