"""Turn mining results into the run folder's tables and the reconciled counts of ``run.json``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fr_data.folders import run_folder as rf
from fr_data.folders import run_signals
from fr_data.folders.embeddings_folder import Embeddings
from fr_data.folders.run_folder import MINED_SAMPLES_SCHEMA, OPTIONAL_SAMPLES_SCHEMA, SWEEP_SCHEMA
from fr_data.folders.run_signals import Signal
from fr_data.folders.shard_folder import read_provenance
from fr_data.io.errors import ConfigError
from fr_data.io.faults import kill_point
from fr_data.mining.config import COS_75_DEGREES, MiningConfig
from fr_data.mining.groups import bias_report, kmeans_class_groups
from fr_data.mining.noise import Vote, suspects
from fr_data.mining.pairs import Pairs
from fr_data.mining.results import Findings, Geometry
from fr_data.mining.splits import (
    AttributeJoin,
    join_attributes,
    pose_bins_from_flip,
    pose_bins_from_yaw,
    resolution_bins,
)
from fr_data.query.readonly import INTERNAL, connect

GROUP_COLUMNS = ("group", "race", "ethnicity")


@dataclass
class Built:
    """The tables of a run and its report (counts, thresholds, sources)."""

    samples: pa.Table
    classes: pa.Table
    pairs: pa.Table
    groups: pa.Table
    sweep: pa.Table
    report: dict[str, Any]


def _f32(x: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(x, dtype=np.float32), type=pa.float32(), from_pandas=True)


def _labels(labels: np.ndarray, class_ids: np.ndarray) -> pa.Array:
    """Labels of class ids, null where the id is -1."""
    return pa.array(labels[np.maximum(class_ids, 0)], type=pa.int64(), mask=class_ids < 0)


def _strings(x: np.ndarray) -> pa.Array:
    return pa.array(x, type=pa.string())


Columns = dict[str, pa.Array | pa.ChunkedArray]
#: How a signal's columns are filled from the stage results: one function per signal of
#: ``fr_data.folders.run_signals`` computed before the ``tables`` stage.
Fill = Callable[[Embeddings, Geometry, Findings], Columns]


def _identity(emb: Embeddings, geo: Geometry, f: Findings) -> Columns:
    return {"key": emb.index.column("key"), "label": pa.array(emb.labels, type=pa.int64())}


def _nearest_other(emb: Embeddings, geo: Geometry, f: Findings) -> Columns:
    return {"nearest_other_label": _labels(geo.cindex.labels, f.cols["nearest_other"]),
            "nearest_other_cos": _f32(f.cols["nearest_other_cos"])}


def _suspects(emb: Embeddings, geo: Geometry, f: Findings) -> Columns:
    return {"suspect_mislabel": pa.array(f.cols["suspect_mislabel"]),
            "suspected_label": _labels(geo.cindex.labels, f.cols["suspected"])}


def _duplicates(emb: Embeddings, geo: Geometry, f: Findings) -> Columns:
    dup = f.cols["duplicate_of"]
    return {"duplicate_of": pc.take(emb.index.column("key"), pa.array(np.maximum(dup, 0), mask=dup < 0)),
            "duplicate_kind": _strings(f.cols["duplicate_kind"]), "duplicate_cos": _f32(f.cols["duplicate_cos"])}


def _floats(*names: str) -> Fill:
    """A signal whose columns are the float32 findings of the same names."""
    return lambda emb, geo, f: {n: _f32(f.cols[n]) for n in names}


SAMPLE_FILLS: dict[str, Fill] = {
    "identity": _identity,
    "vector_ok": lambda emb, geo, f: {"vector_ok": pa.array(geo.validity.ok)},
    "center_cos": _floats("center_cos"),
    "nearest_other": _nearest_other,
    "margin": _floats("margin"),
    "knn_agreement": _floats("knn_agreement"),
    "suspects": _suspects,
    "duplicates": _duplicates,
    "quality_sdd": _floats("quality_sdd"),
    "quality_cr": _floats("quality_cr"),
    "instance_fpr": _floats("instance_fpr"),
    "difficulty": lambda emb, geo, f: {"difficulty": _f32(f.cols["difficulty"]), "split": _strings(f.cols["split"])},
    "nn_cos": _floats("nn_cos"),
    "duplicate_pixel_sim": lambda emb, geo, f: {"duplicate_pixel_sim": _f32(
        np.full(emb.n, np.nan, np.float32) if f.cols["duplicate_pixel_sim"] is None
        else f.cols["duplicate_pixel_sim"])},
}


def filled(signal: Signal, columns: Columns) -> Columns:
    """``columns`` when they are exactly the ones ``signal`` declares (else an internal error)."""
    if tuple(columns) != signal.names:
        raise RuntimeError(f"internal error: signal {signal.name!r} filled {list(columns)}, "
                           f"declared {list(signal.names)}")
    return columns


def samples_table(emb: Embeddings, geo: Geometry, f: Findings) -> pa.Table:
    """The mined columns, one row per input row, in index order: every samples signal produced before
    the ``tables`` stage, filled by its ``SAMPLE_FILLS`` entry (bins and groups are added later)."""
    cols: Columns = {}
    for signal in run_signals.signals_of("samples"):
        if signal.stage != "tables":
            cols.update(filled(signal, SAMPLE_FILLS[signal.name](emb, geo, f)))
    return pa.table(cols)


def pose_yaw(emb: Embeddings, attribute_yaw: np.ndarray | None) -> tuple[np.ndarray | None, str | None]:
    """The yaw the pose bins use and its source: a joined ``yaw`` attribute (``attribute``) first, else
    the embeddings index's landmark estimate (``landmarks``, ``embed --pose``); ``(None, None)`` when
    neither exists (the bins then fall back to ``flip_cos``)."""
    if attribute_yaw is not None:
        return attribute_yaw, "attribute"
    landmarks = emb.column("yaw")
    return (landmarks, "landmarks") if landmarks is not None else (None, None)


def add_bins(table: pa.Table, emb: Embeddings, cfg: MiningConfig, yaw: np.ndarray | None) -> tuple[pa.Table, dict]:
    """Resolution and pose bins; pose from |yaw| (a joined attribute, else the landmark estimate of the
    embeddings index), else from flip_cos."""
    n = table.num_rows
    res = emb.column("resolution")
    flip = emb.column("flip_cos")
    res = np.full(n, np.nan, np.float32) if res is None else res
    flip = np.full(n, np.nan, np.float32) if flip is None else flip
    yaw, pose_source = pose_yaw(emb, yaw)
    pose = pose_bins_from_yaw(yaw, cfg.bins.yaw_edges) if yaw is not None else \
        pose_bins_from_flip(flip, cfg.bins.flip_cos_edges)
    cols = {"resolution": _f32(res),
            "resolution_bin": _strings(resolution_bins(res, cfg.bins.resolution_edges)),
            "flip_cos": _f32(flip), "pose_bin": _strings(pose)}
    for name, arr in cols.items():
        table = table.append_column(name, arr)
    info = {"pose_source": pose_source or ("flip_cos" if not np.isnan(flip).all() else None),
            "resolution_source": None if np.isnan(res).all() else "embeddings index",
            "resolution_bin": _value_counts(table.column("resolution_bin")),
            "pose_bin": _value_counts(table.column("pose_bin"))}
    return table, info


def add_quality(table: pa.Table, emb: Embeddings) -> pa.Table:
    """The embeddings index's ``quality`` column, when it has one (an optional samples column)."""
    quality = emb.column("quality")
    return table if quality is None else table.append_column("quality", _f32(quality))


def add_provenance(table: pa.Table, classes: pa.Table, manifest: str | Path | None) -> tuple[pa.Table, pa.Table]:
    """``samples.source_path`` / ``samples.identity`` (by key) and ``classes.identity`` (by label) from the
    shard manifest ``--samples``; nulls without one or when it predates the provenance columns."""
    prov = None if manifest is None else read_provenance(manifest)
    if prov is None:
        prov = pa.table({"key": pa.array([], pa.string()), "label": pa.array([], pa.int64()),
                         "source_path": pa.array([], pa.string()), "identity": pa.array([], pa.string())})
    rows = pc.index_in(table.column("key"), value_set=prov.column("key"))
    for name in ("source_path", "identity"):
        table = table.append_column(name, pc.take(prov.column(name), rows))
    named = prov.group_by("label").aggregate([("identity", "min")])
    at = pc.index_in(classes.column("label"), value_set=named.column("label"))
    return table, classes.append_column("identity", pc.take(named.column("identity_min"), at))


def _value_counts(col: pa.ChunkedArray) -> dict[str, int]:
    return {str(v["values"]): int(v["counts"]) for v in pc.value_counts(col).to_pylist()}


def _group_column(join: AttributeJoin | None, cfg: MiningConfig) -> str | None:
    """Name (in the joined table) of the attribute column holding groups, or None."""
    if cfg.groups.column is not None:
        wanted = [cfg.groups.column, f"attr_{cfg.groups.column}"]
        found = [c for c in wanted if join is not None and c in join.columns]
        if not found:
            raise ConfigError(f"groups.column {cfg.groups.column!r} is not an attribute column "
                              f"(joined: {join.columns if join else []})")
        return found[0]
    for name in GROUP_COLUMNS:
        for col in (name, f"attr_{name}"):
            if join is not None and col in join.columns:
                return col
    return None


def sample_groups(table: pa.Table, geo: Geometry, join: AttributeJoin | None, cfg: MiningConfig) -> tuple[np.ndarray, str]:
    """Per-sample group names and their source (an attribute column, else k-means over centres)."""
    col = _group_column(join, cfg)
    if col is not None:
        values = table.column(col).cast(pa.string()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=object), f"attribute:{col}"
    assign = kmeans_class_groups(geo.centres.db, cfg.groups.kmeans_groups, cfg.groups.kmeans_iter, cfg.seed)
    per_class = np.full(geo.cindex.num_classes, None, dtype=object)
    per_class[geo.centres.active] = [f"cluster_{a}" for a in assign]
    return per_class[geo.cindex.of_sample], "kmeans"


def classes_table(geo: Geometry, f: Findings, group: np.ndarray) -> pa.Table:
    """One row per label: counts, spread, nearest class, merge flag and the (modal) group."""
    labels, counts = geo.cindex.labels, geo.cindex.counts
    rows = np.bincount(geo.cindex.of_sample, minlength=len(labels))
    con = connect((), INTERNAL, spill=True)
    con.register("g", pa.table({"c": geo.cindex.of_sample, "g": _strings(group)}))
    modal = dict(con.sql("SELECT c, mode(g) FROM g WHERE g IS NOT NULL GROUP BY c").fetchall())
    return pa.table({
        "label": pa.array(labels, type=pa.int64()), "n": pa.array(counts, type=pa.int64()),
        "n_invalid": pa.array(rows - counts, type=pa.int64()), "spread": _f32(geo.centres.spread),
        "nearest_label": _labels(labels, geo.class_nearest), "nearest_cos": _f32(geo.class_nearest_cos),
        "neighbour_mix": _f32(f.class_mix), "merge_candidate": pa.array(f.same_person >= 0),
        "group": pa.array([modal.get(c) for c in range(len(labels))], type=pa.string()),
    })


def pairs_table(samples: pa.Table, pairs: Pairs) -> pa.Table:
    """Pairs as keys, labels, cosine, kind and each side's pose / resolution bin."""
    a, b = pa.array(pairs.a, type=pa.int64()), pa.array(pairs.b, type=pa.int64())
    out = {"key_a": pc.take(samples.column("key"), a), "key_b": pc.take(samples.column("key"), b),
           "label_a": pc.take(samples.column("label"), a), "label_b": pc.take(samples.column("label"), b),
           "cos": _f32(pairs.cos), "kind": _strings(pairs.kind)}
    for col in ("pose_bin", "resolution_bin"):
        out[f"{col}_a"] = pc.take(samples.column(col), a)
        out[f"{col}_b"] = pc.take(samples.column(col), b)
    return pa.table(out)


def sweep_table(geo: Geometry, f: Findings, cfg: MiningConfig) -> pa.Table:
    """How many classes / samples each candidate threshold flags."""
    rows: list[tuple[str, float, int, str, bool]] = []
    near = np.nan_to_num(geo.class_nearest_cos, nan=-np.inf)
    for v in sorted(set(cfg.sweep.merge_cos) | {cfg.classes.merge_cos} - {None}):
        rows.append(("classes.merge_cos", v, int((near >= v).sum()), "classes", v == cfg.classes.merge_cos))
    mix = np.nan_to_num(f.class_mix, nan=-np.inf)
    for v in sorted(set(cfg.sweep.merge_mix) | {cfg.classes.merge_mix} - {None}):
        rows.append(("classes.merge_mix", v, int((mix >= v).sum()), "classes", v == cfg.classes.merge_mix))
    cc = np.nan_to_num(geo.center_cos, nan=np.inf)
    for v in sorted(set(cfg.sweep.center_cos)):
        rows.append(("center_cos_below", v, int((cc < v).sum()), "samples", abs(v - COS_75_DEGREES) < 1e-3))
    top = np.nan_to_num(f.cols["nn_cos"], nan=-np.inf)
    for v in sorted(set(cfg.sweep.duplicate_cos) | {cfg.duplicates.cos}):
        rows.append(("duplicates.cos", v, int((top >= v).sum()), "samples", v == cfg.duplicates.cos))
    vote = Vote(f.cols["knn_agreement"], f.cols["vote_winner"], f.cols["vote_share"])
    for v in sorted(set(cfg.sweep.vote_min) | {cfg.noise.vote_min}):
        flagged = suspects(vote, f.class_of, f.cols["margin"], v, cfg.noise.margin_max, f.same_person)
        flagged &= geo.validity.ok
        rows.append(("noise.vote_min", v, int(flagged.sum()), "samples", v == cfg.noise.vote_min))
    names = [f.name for f in SWEEP_SCHEMA]
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}, schema=SWEEP_SCHEMA)


def build(emb: Embeddings, geo: Geometry, f: Findings, pairs: Pairs, cfg: MiningConfig, *,
          samples: str | Path | None = None, attributes: str | Path | None = None) -> Built:
    """All tables plus the report that goes into run.json and the Parquet metadata."""
    table = samples_table(emb, geo, f)
    join = None
    if attributes is not None:
        reserved = MINED_SAMPLES_SCHEMA.names + OPTIONAL_SAMPLES_SCHEMA.names
        join = join_attributes(table, attributes, samples, reserved=reserved)
        table = join.table
    yaw_col = next((c for c in (cfg.bins.yaw_column, f"attr_{cfg.bins.yaw_column}")
                    if join is not None and c in join.columns), None)
    yaw = None if yaw_col is None else table.column(yaw_col).cast(pa.float32()).fill_null(np.nan).to_numpy()
    table, bins = add_bins(table, emb, cfg, yaw)
    group, source = sample_groups(table, geo, join, cfg)
    table = table.append_column("group", _strings(group))
    table = add_quality(table, emb)
    fpr = np.asarray(f.cols["instance_fpr"], dtype=np.float64)
    groups = bias_report(group, geo.cindex.of_sample, fpr, source)
    pair_table = pairs_table(table, pairs)
    report = run_report(emb, geo, f, table, pair_table, join, cfg)
    report["bins"] = bins
    report["groups"] = {"source": source, "rows": groups.to_pylist()}
    sweep = sweep_table(geo, f, cfg)
    report["sweep"] = sweep.to_pylist()
    table, classes = add_provenance(table, classes_table(geo, f, group), samples)
    return Built(table, classes, pair_table, groups, sweep, report)


def run_report(emb: Embeddings, geo: Geometry, f: Findings, samples: pa.Table, pairs: pa.Table,
               join: AttributeJoin | None, cfg: MiningConfig) -> dict[str, Any]:
    """Counts that reconcile with the input, thresholds in force, attribute-join outcome."""
    v, counts, c = geo.validity, geo.cindex.counts, f.cols
    split = _value_counts(samples.column("split"))
    kinds = _value_counts(samples.column("duplicate_kind"))
    merge = f.same_person >= 0
    thr = f.threshold
    out = {
        "counts": {
            "input_rows": emb.n, "samples_rows": samples.num_rows, "valid_vectors": int(v.ok.sum()),
            "nan_vectors": v.n_nan, "zero_vectors": v.n_zero, "first_invalid_rows": v.first_bad_rows,
            "classes": int(len(counts)), "classes_without_valid_vectors": int((counts == 0).sum()),
            "single_image_classes": int((counts == 1).sum()),
            "samples_in_single_image_classes": int((counts[geo.cindex.of_sample] == 1).sum()),
            "merge_candidate_classes": int(merge.sum()), "suspect_mislabel": int(c["suspect_mislabel"].sum()),
            "duplicates_same_class": kinds.get("same_class", 0),
            "duplicates_cross_class": kinds.get("cross_class", 0),
            "split": split, "pairs": _value_counts(pairs.column("kind")) if pairs.num_rows else {},
        },
        "thresholds": {
            "merge_cos": cfg.classes.merge_cos, "merge_mix": cfg.classes.merge_mix,
            "duplicate_cos": cfg.duplicates.cos,
            "vote_min": cfg.noise.vote_min, "margin_max": cfg.noise.margin_max,
            "target_fpr": cfg.quality.target_fpr,
            "unified_fpr_threshold": thr.value if np.isfinite(thr.value) else None,
        },
        "instance_fpr": {"false_positives": thr.false_positives, "total_negatives": thr.total_negatives,
                         "saturated_samples": thr.saturated, "exact": thr.saturated == 0},
        "attributes": None if join is None else {
            "joined_by": join.by, "rows": join.attribute_rows, "columns": join.columns,
            "unmatched_attribute_rows": join.unmatched_attribute_rows,
            "samples_without_attributes": join.samples_without_attributes},
    }
    out["counts"]["reconciled"] = _reconcile(out["counts"], int((c["duplicate_of"] >= 0).sum()))
    return out


def _reconcile(counts: dict[str, Any], n_dups: int) -> bool:
    """Every input row is in samples.parquet and every row is accounted for in each breakdown."""
    n = counts["input_rows"]
    checks = {
        "rows": counts["samples_rows"] == n,
        "validity": counts["valid_vectors"] + counts["nan_vectors"] + counts["zero_vectors"] == n,
        "split": sum(counts["split"].values()) == n,
        "duplicates": counts["duplicates_same_class"] + counts["duplicates_cross_class"] == n_dups,
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise RuntimeError(f"internal error: counts do not reconcile ({bad}): {counts}")
    return True


def write(folder: Path, built: Built, run: dict[str, Any]) -> None:
    """Write every table of the run folder with the run report as Parquet key-value metadata."""
    for name in rf.TABLES:
        rf.write(folder, name, getattr(built, name), run)
        kill_point("mine:tables")
