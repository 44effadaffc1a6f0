"""Turn mining results into the run folder's tables and the reconciled counts of ``run.json``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
from fr_data.io.errors import ConfigError
from fr_data.io.faults import kill_point
from fr_data.mining.config import COS_75_DEGREES, MiningConfig
from fr_data.mining.group import SOLO, Ranks
from fr_data.mining.groups import bias_report, kmeans_class_groups
from fr_data.mining.noise import Vote, suspects
from fr_data.mining.pairs import Pairs
from fr_data.mining.provenance import classes_identity, samples_provenance
from fr_data.mining.results import Findings, Geometry
from fr_data.mining.splits import (
    AttributeJoin,
    join_attributes,
    pose_bins_from_flip,
    pose_bins_from_yaw,
    resolution_bins,
)

GROUP_COLUMNS = ("group", "race", "ethnicity")


@dataclass
class Built:
    """The tables of a run and its report (counts, thresholds, sources); samples.parquet is in ``parts``
    files, one per rank, in the staging folder."""

    classes: pa.Table
    pairs: pa.Table
    groups: pa.Table
    sweep: pa.Table
    report: dict[str, Any]
    parts: int


def _f32(x: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(x, dtype=np.float32), type=pa.float32(), from_pandas=True)


def _labels(labels: np.ndarray, class_ids: np.ndarray) -> pa.Array:
    """Labels of class ids, null where the id is -1."""
    return pa.array(labels[np.maximum(class_ids, 0)], type=pa.int64(), mask=class_ids < 0)


def _strings(x: np.ndarray) -> pa.Array:
    return pa.array(x, type=pa.string())


@dataclass
class Share:
    """What a rank fills its rows ``[a, b)`` of samples.parquet from (``Findings.span``; every row in one
    process): the stage results and the keys of its rows and of their duplicates' kept twins."""

    emb: Embeddings
    geo: Geometry
    f: Findings
    keys: pa.Array
    twin_keys: pa.Array  # in the order of the share's duplicate rows

    @property
    def rows(self) -> slice:
        return slice(*self.f.span)

    @classmethod
    def of(cls, emb: Embeddings, geo: Geometry, f: Findings) -> Share:
        dup = f.cols["duplicate_of"]
        keys, twins = emb.keys(*f.span, dup[dup >= 0])
        return cls(emb, geo, f, keys, twins)


Columns = dict[str, pa.Array | pa.ChunkedArray]
#: How a signal's columns are filled from a share's stage results: one function per signal of
#: ``fr_data.folders.run_signals`` computed before the ``tables`` stage.
Fill = Callable[[Share], Columns]


def _identity(s: Share) -> Columns:
    return {"key": s.keys, "label": pa.array(s.emb.labels[s.rows], type=pa.int64())}


def _nearest_other(s: Share) -> Columns:
    return {"nearest_other_label": _labels(s.geo.cindex.labels, s.f.cols["nearest_other"]),
            "nearest_other_cos": _f32(s.f.cols["nearest_other_cos"])}


def _suspects(s: Share) -> Columns:
    return {"suspect_mislabel": pa.array(s.f.cols["suspect_mislabel"]),
            "suspected_label": _labels(s.geo.cindex.labels, s.f.cols["suspected"])}


def _duplicates(s: Share) -> Columns:
    dup = s.f.cols["duplicate_of"]
    at = np.cumsum(dup >= 0) - 1  # position among the share's duplicates (the order of twin_keys)
    return {"duplicate_of": pc.take(s.twin_keys, pa.array(np.maximum(at, 0), mask=dup < 0)),
            "duplicate_kind": _strings(s.f.cols["duplicate_kind"]), "duplicate_cos": _f32(s.f.cols["duplicate_cos"])}


def _floats(*names: str) -> Fill:
    """A signal whose columns are the float32 findings of the same names."""
    return lambda s: {n: _f32(s.f.cols[n]) for n in names}


def _pixel_sim(s: Share) -> Columns:
    sim = s.f.cols["duplicate_pixel_sim"]
    return {"duplicate_pixel_sim": _f32(np.full(len(s.keys), np.nan, np.float32) if sim is None else sim)}


SAMPLE_FILLS: dict[str, Fill] = {
    "identity": _identity,
    "vector_ok": lambda s: {"vector_ok": pa.array(s.geo.validity.ok[s.rows])},
    "center_cos": _floats("center_cos"),
    "nearest_other": _nearest_other,
    "margin": _floats("margin"),
    "knn_agreement": _floats("knn_agreement"),
    "suspects": _suspects,
    "duplicates": _duplicates,
    "quality_sdd": _floats("quality_sdd"),
    "quality_cr": _floats("quality_cr"),
    "instance_fpr": _floats("instance_fpr"),
    "difficulty": lambda s: {"difficulty": _f32(s.f.cols["difficulty"]), "split": _strings(s.f.cols["split"])},
    "nn_cos": _floats("nn_cos"),
    "duplicate_pixel_sim": _pixel_sim,
}


def filled(signal: Signal, columns: Columns) -> Columns:
    """``columns`` when they are exactly the ones ``signal`` declares (else an internal error)."""
    if tuple(columns) != signal.names:
        raise RuntimeError(f"internal error: signal {signal.name!r} filled {list(columns)}, "
                           f"declared {list(signal.names)}")
    return columns


def samples_table(share: Share) -> pa.Table:
    """The mined columns of the share's rows, in index order: every samples signal produced before the
    ``tables`` stage, filled by its ``SAMPLE_FILLS`` entry (bins and groups are added later)."""
    cols: Columns = {}
    for signal in run_signals.signals_of("samples"):
        if signal.stage != "tables":
            cols.update(filled(signal, SAMPLE_FILLS[signal.name](share)))
    return pa.table(cols)


def pose_yaw(emb: Embeddings, attribute_yaw: np.ndarray | None, rows: slice = slice(None)
             ) -> tuple[np.ndarray | None, str | None]:
    """The yaw the pose bins use and its source: a joined ``yaw`` attribute (``attribute``) first, else
    the embeddings index's landmark estimate (``landmarks``, ``embed --pose``); ``(None, None)`` when
    neither exists (the bins then fall back to ``flip_cos``)."""
    if attribute_yaw is not None:
        return attribute_yaw, "attribute"
    landmarks = emb.column("yaw", rows)
    return (landmarks, "landmarks") if landmarks is not None else (None, None)


def add_bins(table: pa.Table, emb: Embeddings, cfg: MiningConfig, yaw: np.ndarray | None,
             rows: slice = slice(None)) -> tuple[pa.Table, dict]:
    """Resolution and pose bins of the index rows ``rows`` (the table's); pose from |yaw| (a joined
    attribute, else the landmark estimate of the embeddings index), else from flip_cos. The counts are the
    share's (:func:`bins_report` adds the shares up)."""
    n = table.num_rows
    res, flip = emb.column("resolution", rows), emb.column("flip_cos", rows)
    res = np.full(n, np.nan, np.float32) if res is None else res
    flip = np.full(n, np.nan, np.float32) if flip is None else flip
    yaw, pose_source = pose_yaw(emb, yaw, rows)
    pose = pose_bins_from_yaw(yaw, cfg.bins.yaw_edges) if yaw is not None else \
        pose_bins_from_flip(flip, cfg.bins.flip_cos_edges)
    cols = {"resolution": _f32(res),
            "resolution_bin": _strings(resolution_bins(res, cfg.bins.resolution_edges)),
            "flip_cos": _f32(flip), "pose_bin": _strings(pose)}
    for name, arr in cols.items():
        table = table.append_column(name, arr)
    info = {"pose_source": pose_source, "flip_known": bool(not np.isnan(flip).all()),
            "resolution_known": bool(not np.isnan(res).all()),
            "resolution_bin": _value_counts(table.column("resolution_bin")),
            "pose_bin": _value_counts(table.column("pose_bin"))}
    return table, info


def bins_report(shares: Sequence[dict]) -> dict:
    """``run.json``'s ``bins`` from every share's :func:`add_bins` counts (in rank order)."""
    first = shares[0]
    flip_known = any(s["flip_known"] for s in shares)
    return {"pose_source": first["pose_source"] or ("flip_cos" if flip_known else None),
            "resolution_source": "embeddings index" if any(s["resolution_known"] for s in shares) else None,
            "resolution_bin": merged_counts(s["resolution_bin"] for s in shares),
            "pose_bin": merged_counts(s["pose_bin"] for s in shares)}


def add_quality(table: pa.Table, emb: Embeddings, rows: slice = slice(None)) -> pa.Table:
    """The embeddings index's ``quality`` column, when it has one (an optional samples column)."""
    quality = emb.column("quality", rows)
    return table if quality is None else table.append_column("quality", _f32(quality))


def _value_counts(col: pa.ChunkedArray) -> dict[str, int]:
    return {str(v["values"]): int(v["counts"]) for v in pc.value_counts(col).to_pylist()}


def merged_counts(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Value counts of consecutive shares added up, each value where the first share met it."""
    out: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = out.get(k, 0) + v
    return out


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


def sample_groups(table: pa.Table, geo: Geometry, join: AttributeJoin | None, cfg: MiningConfig,
                  rows: slice = slice(None), ranks: Ranks = SOLO) -> tuple[np.ndarray, str]:
    """Group names of the table's rows (index rows ``rows``) and their source: an attribute column, else
    k-means over the class centres (run on rank 0, the clusters broadcast)."""
    col = _group_column(join, cfg)
    if col is not None:
        values = table.column(col).cast(pa.string()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=object), f"attribute:{col}"
    assign = kmeans_class_groups(geo.centres.db, cfg.groups.kmeans_groups, cfg.groups.kmeans_iter, cfg.seed) \
        if ranks.is_root else None
    assign = ranks.broadcast_array("kmeans_groups", assign, (len(geo.centres.active),), np.dtype(np.int64))
    per_class = np.full(geo.cindex.num_classes, None, dtype=object)
    per_class[geo.centres.active] = [f"cluster_{a}" for a in assign]
    return per_class[geo.cindex.of_sample[rows]], "kmeans"


def group_codes(group: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``group`` (object array, None = no group) as int32 indices into the sorted ``names`` (-1 for None)."""
    codes = np.full(len(group), -1, np.int32)
    known = np.flatnonzero(np.array([g is not None for g in group], dtype=bool))
    if len(known):
        values = np.array([str(g) for g in group[known]], dtype=object)
        codes[known] = np.searchsorted(np.asarray(list(names), dtype=object), values)
    return codes


def modal_groups(codes: np.ndarray, class_of: np.ndarray, num_classes: int) -> np.ndarray:
    """Per class, the code of its most frequent group (-1: none); a tie goes to the group met first in
    row order."""
    rows = np.flatnonzero(codes >= 0)
    out = np.full(num_classes, -1, np.int64)
    if not len(rows):
        return out
    width = int(codes.max()) + 1
    pair = class_of[rows].astype(np.int64) * width + codes[rows]
    uniq, first, count = np.unique(pair, return_index=True, return_counts=True)
    cls, first_row = uniq // width, rows[first]
    order = np.lexsort((first_row, -count, cls))
    lead = order[np.r_[True, cls[order][1:] != cls[order][:-1]]]
    out[cls[lead]] = uniq[lead] % width
    return out


def classes_table(geo: Geometry, f: Findings, group: np.ndarray) -> pa.Table:
    """One row per label: counts, spread, nearest class, merge flag and ``group`` (per class; the modal
    group of its samples, :func:`modal_groups`)."""
    labels, counts = geo.cindex.labels, geo.cindex.counts
    rows = np.bincount(geo.cindex.of_sample, minlength=len(labels))
    return pa.table({
        "label": pa.array(labels, type=pa.int64()), "n": pa.array(counts, type=pa.int64()),
        "n_invalid": pa.array(rows - counts, type=pa.int64()), "spread": _f32(geo.centres.spread),
        "nearest_label": _labels(labels, geo.class_nearest), "nearest_cos": _f32(geo.class_nearest_cos),
        "neighbour_mix": _f32(f.class_mix), "merge_candidate": pa.array(f.same_person >= 0),
        "group": pa.array(list(group), type=pa.string()),
    })


def pair_lookup(table: pa.Table, first_row: int, wanted: np.ndarray) -> list[list]:
    """``[row, key, pose_bin, resolution_bin]`` of the ``wanted`` rows (sorted) in the table (rows from
    ``first_row``): what rank 0 needs of a share to write the pairs."""
    lo, hi = np.searchsorted(wanted, [first_row, first_row + table.num_rows])
    rows = wanted[lo:hi]
    at = pa.array(rows - first_row)
    cols = [table.column(c).take(at).to_pylist() for c in ("key", "pose_bin", "resolution_bin")]
    return [[int(r), *v] for r, *v in zip(rows.tolist(), *cols, strict=True)]


def pairs_table(found: Sequence[list], labels: np.ndarray, pairs: Pairs) -> pa.Table:
    """Pairs as keys, labels, cosine, kind and each side's pose / resolution bin (``found``: the
    :func:`pair_lookup` entries of every share)."""
    found = sorted(found)
    rows = np.array([f[0] for f in found], np.int64)
    cols = {name: pa.array([f[i] for f in found], type=pa.string())
            for i, name in ((1, "key"), (2, "pose_bin"), (3, "resolution_bin"))}
    a, b = (pa.array(np.searchsorted(rows, side)) for side in (pairs.a, pairs.b))
    out = {"key_a": cols["key"].take(a), "key_b": cols["key"].take(b),
           "label_a": pa.array(labels[pairs.a], type=pa.int64()), "label_b": pa.array(labels[pairs.b], type=pa.int64()),
           "cos": _f32(pairs.cos), "kind": _strings(pairs.kind)}
    for col in ("pose_bin", "resolution_bin"):
        out[f"{col}_a"] = cols[col].take(a)
        out[f"{col}_b"] = cols[col].take(b)
    return pa.table(out)


def sweep_values(cfg: MiningConfig) -> dict[str, list[float]]:
    """The candidate thresholds of the samples rows of the sweep, by parameter."""
    return {"center_cos_below": sorted(set(cfg.sweep.center_cos)),
            "duplicates.cos": sorted(set(cfg.sweep.duplicate_cos) | {cfg.duplicates.cos}),
            "noise.vote_min": sorted(set(cfg.sweep.vote_min) | {cfg.noise.vote_min})}


def sweep_counts(geo: Geometry, f: Findings, cfg: MiningConfig) -> dict[str, list[int]]:
    """How many of the share's samples each candidate threshold of :func:`sweep_values` flags."""
    values = sweep_values(cfg)
    a, b = f.span
    cc = np.nan_to_num(geo.center_cos, nan=np.inf)
    top = np.nan_to_num(f.cols["nn_cos"], nan=-np.inf)
    vote = Vote(f.cols["knn_agreement"], f.cols["vote_winner"], f.cols["vote_share"])
    ok, own = geo.validity.ok[a:b], f.class_of[a:b]
    return {"center_cos_below": [int((cc < v).sum()) for v in values["center_cos_below"]],
            "duplicates.cos": [int((top >= v).sum()) for v in values["duplicates.cos"]],
            "noise.vote_min": [int((suspects(vote, own, f.cols["margin"], v, cfg.noise.margin_max,
                                             f.same_person) & ok).sum()) for v in values["noise.vote_min"]]}


def sweep_table(geo: Geometry, f: Findings, cfg: MiningConfig, counts: dict[str, list[int]]) -> pa.Table:
    """How many classes / samples each candidate threshold flags (``counts``: :func:`sweep_counts` of
    every row)."""
    rows: list[tuple[str, float, int, str, bool]] = []
    near = np.nan_to_num(geo.class_nearest_cos, nan=-np.inf)
    for v in sorted(set(cfg.sweep.merge_cos) | {cfg.classes.merge_cos} - {None}):
        rows.append(("classes.merge_cos", v, int((near >= v).sum()), "classes", v == cfg.classes.merge_cos))
    mix = np.nan_to_num(f.class_mix, nan=-np.inf)
    for v in sorted(set(cfg.sweep.merge_mix) | {cfg.classes.merge_mix} - {None}):
        rows.append(("classes.merge_mix", v, int((mix >= v).sum()), "classes", v == cfg.classes.merge_mix))
    values = sweep_values(cfg)
    chosen = {"center_cos_below": lambda v: abs(v - COS_75_DEGREES) < 1e-3,
              "duplicates.cos": lambda v: v == cfg.duplicates.cos, "noise.vote_min": lambda v: v == cfg.noise.vote_min}
    for name, vs in values.items():
        for v, count in zip(vs, counts[name], strict=True):
            rows.append((name, v, count, "samples", chosen[name](v)))
    names = [f.name for f in SWEEP_SCHEMA]
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}, schema=SWEEP_SCHEMA)


def share_counts(table: pa.Table, geo: Geometry, f: Findings, join: AttributeJoin | None, bins: dict,
                 group: np.ndarray, cfg: MiningConfig) -> dict[str, Any]:
    """What rank 0 adds up over the shares for the run report (JSON)."""
    hits = None if join is None else join.hits
    return {
        "rows": table.num_rows, "suspect_mislabel": int(f.cols["suspect_mislabel"].sum()),
        "duplicates": int((f.cols["duplicate_of"] >= 0).sum()),
        "split": _value_counts(table.column("split")), "duplicate_kind": _value_counts(table.column("duplicate_kind")),
        "bins": bins, "sweep": sweep_counts(geo, f, cfg),
        "groups": sorted({str(g) for g in group if g is not None}),
        "attribute_hits": None if hits is None else int(hits.sum()),
        "attribute_labels": None if join is None or join.by != "label" else
        np.unique(table.column("label").to_numpy()[hits]).tolist(),
    }


def build(emb: Embeddings, geo: Geometry, f: Findings, pairs: Pairs | None, cfg: MiningConfig, folder: Path, *,
          samples: str | Path | None = None, attributes: str | Path | None = None,
          ranks: Ranks = SOLO) -> Built | None:
    """Every rank writes its rows of samples.parquet into the staging ``folder``
    (:func:`fr_data.folders.run_folder.write_samples_part`); rank 0 returns the other tables and the
    report that goes into run.json and the Parquet metadata (None on the other ranks).

    Rank 0 receives of each share its counts (JSON), its rows' group (4 B a row, for the bias report and
    the classes' modal group) and the keys and bins of the pairs' rows."""
    n, (a, b), rows = emb.n, f.span, slice(*f.span)
    table = samples_table(Share.of(emb, geo, f))
    join = None
    if attributes is not None:
        reserved = MINED_SAMPLES_SCHEMA.names + OPTIONAL_SAMPLES_SCHEMA.names
        join = join_attributes(table, attributes, samples, reserved=reserved)
        table = join.table
    yaw_col = next((c for c in (cfg.bins.yaw_column, f"attr_{cfg.bins.yaw_column}")
                    if join is not None and c in join.columns), None)
    yaw = None if yaw_col is None else table.column(yaw_col).cast(pa.float32()).fill_null(np.nan).to_numpy()
    table, bins = add_bins(table, emb, cfg, yaw, rows)
    group, source = sample_groups(table, geo, join, cfg, rows, ranks)
    table = table.append_column("group", _strings(group))
    table = add_quality(table, emb, rows)
    table = samples_provenance(table, samples)
    wanted = None
    if ranks.is_root:
        wanted = np.unique(np.concatenate([pairs.a, pairs.b])).astype(np.int64)
    size = ranks.broadcast_json("pair_rows", None if wanted is None else len(wanted))
    wanted = ranks.broadcast_array("pair_rows", wanted, (size,), np.dtype(np.int64))
    lookups = ranks.gather_json("pair_lookup", pair_lookup(table, a, wanted))
    counts = share_counts(table, geo, f, join, bins, group, cfg)
    rf.write_samples_part(folder, ranks.rank, table)
    del table
    shares = ranks.gather_json("tables_counts", counts)
    names = sorted(set().union(*(s["groups"] for s in shares)))
    got = ranks.gather_span("group_rows", n, (a, b), {"group": group_codes(group, names),
                                                      "fpr": f.cols["instance_fpr"]})
    del group
    if got is None:
        return None
    codes, fpr = got["group"], np.asarray(got["fpr"], dtype=np.float64)
    groups = bias_report(codes, names, geo.cindex.of_sample, fpr, source)
    modal = np.array([None, *names], dtype=object)[modal_groups(codes, geo.cindex.of_sample,
                                                                 geo.cindex.num_classes) + 1]
    pair_table = pairs_table([x for part in lookups for x in part], emb.labels, pairs)
    report = run_report(emb, geo, f, shares, pair_table, join, cfg)
    report["bins"] = bins_report([s["bins"] for s in shares])
    report["groups"] = {"source": source, "rows": groups.to_pylist()}
    sweep = sweep_table(geo, f, cfg, {k: np.sum([s["sweep"][k] for s in shares], axis=0).astype(int).tolist()
                                      for k in sweep_values(cfg)})
    report["sweep"] = sweep.to_pylist()
    classes = classes_identity(classes_table(geo, f, modal), samples)
    return Built(classes, pair_table, groups, sweep, report, ranks.world)


def run_report(emb: Embeddings, geo: Geometry, f: Findings, shares: Sequence[dict[str, Any]], pairs: pa.Table,
               join: AttributeJoin | None, cfg: MiningConfig) -> dict[str, Any]:
    """Counts that reconcile with the input (every share's :func:`share_counts` added up), thresholds in
    force, attribute-join outcome."""
    v, counts = geo.validity, geo.cindex.counts
    split = merged_counts(s["split"] for s in shares)
    kinds = merged_counts(s["duplicate_kind"] for s in shares)
    merge = f.same_person >= 0
    thr = f.threshold
    out = {
        "counts": {
            "input_rows": emb.n, "samples_rows": sum(s["rows"] for s in shares), "valid_vectors": int(v.ok.sum()),
            "nan_vectors": v.n_nan, "zero_vectors": v.n_zero, "first_invalid_rows": v.first_bad_rows,
            "classes": len(counts), "classes_without_valid_vectors": int((counts == 0).sum()),
            "single_image_classes": int((counts == 1).sum()),
            "samples_in_single_image_classes": int((counts[geo.cindex.of_sample] == 1).sum()),
            "merge_candidate_classes": int(merge.sum()),
            "suspect_mislabel": sum(s["suspect_mislabel"] for s in shares),
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
            "unmatched_attribute_rows": join.attribute_rows - _matched_attribute_rows(join, shares),
            "samples_without_attributes": sum(s["rows"] - s["attribute_hits"] for s in shares)},
    }
    out["counts"]["reconciled"] = _reconcile(out["counts"], sum(s["duplicates"] for s in shares))
    return out


def _matched_attribute_rows(join: AttributeJoin, shares: Sequence[dict[str, Any]]) -> int:
    """Attribute rows that joined some sample: one per joined sample by ``key`` / ``source_index`` (both
    unique on either side), one per joined label by ``label``."""
    if join.by == "label":
        return len(set().union(*(s["attribute_labels"] for s in shares)))
    return sum(s["attribute_hits"] for s in shares)


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
    """Write every table of the run folder with the run report as Parquet key-value metadata
    (samples.parquet from the ranks' parts)."""
    for name in rf.TABLES:
        if name == "samples":
            rf.join_samples_parts(folder, built.parts, run)
        else:
            rf.write(folder, name, getattr(built, name), run)
        kill_point("mine:tables")
