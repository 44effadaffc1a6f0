"""Which shard samples train, under which labels: manifest filters, class merges, contiguous relabelling.

Resolved once at start-up (deterministically: every rank gets the same answer without a collective).
The candidate samples are the shard manifest's rows (``SHARDS/samples.parquet``); filters from the config
(:class:`~fr_train.data.config.SelectionConfig`) drop samples in a fixed order, and each dropped sample
is counted under the first reason that hits it, so ``total == selected + sum(dropped)``. Classes flagged
``merge_candidate`` are merged into their ``nearest_label`` with union-find (so chains and mutual pairs
collapse into one class), each merged class represented by its smallest old label. The surviving classes
are relabelled ``0..C'-1`` in ascending order of their (representative) old labels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.folders import overlap_folder
from fr_data.folders import run_folder as rf
from fr_data.folders.review_file import Review, read_review
from fr_data.folders.shard_folder import read_input_samples, samples_path
from fr_data.io.atomic import atomic_write_text
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.parquet import require_non_negative, require_unique, write_table
from fr_data.query.readonly import DEFAULT_LIMITS
from fr_data.query.views import Limits, QueryError, RunViews, open_run, run_query
from fr_data.query.views import open_views as open_view_files
from fr_data.review import decisions as review_decisions
from fr_data.review.decisions import merge_representatives
from fr_train.data.config import SelectionConfig

#: Old label -> new label, saved beside a training run for reproducibility.
LABEL_MAP_SCHEMA = pa.schema([
    pa.field("old_label", pa.int64(), nullable=False),
    pa.field("new_label", pa.int64(), nullable=False),
])

#: The selected samples (sorted by key); feed it back as ``selection.key_list`` to reproduce a run.
SELECTED_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
    pa.field("old_label", pa.int64(), nullable=False),
])

DROP_REASONS = ("key_list", "query", "where", "not_in_run", "split", "suspect", "duplicate", "review",
                "overlap_class", "overlap_image")


@dataclass
class Selection:
    """The selected samples and their new labels.

    Attributes:
        keys: selected sample keys, sorted (numpy str array).
        labels: new label of each key, in ``[0, num_classes)``.
        old_labels: label of each key in the shards (a review's ``relabel:L`` rows already applied).
        old_classes: the old label of every class in the merged groups, sorted (for the label map).
        new_of_old: new label of each ``old_classes`` entry.
        report: counts: ``total``, ``selected``, ``dropped`` per reason, classes before/after, merges.
    """

    keys: np.ndarray
    labels: np.ndarray
    old_labels: np.ndarray
    old_classes: np.ndarray
    new_of_old: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Classes after merging and relabelling."""
        return int(self.new_of_old.max()) + 1 if len(self.new_of_old) else 0

    def __len__(self) -> int:
        return len(self.keys)

    def positions(self, keys: Iterable[str] | np.ndarray) -> np.ndarray:
        """Positions of ``keys`` in :attr:`keys`; -1 for keys that are not selected."""
        wanted = np.asarray(list(keys) if not isinstance(keys, np.ndarray) else keys, dtype=str)
        pos = np.searchsorted(self.keys, wanted)
        pos[pos >= len(self.keys)] = 0
        hit = (self.keys[pos] == wanted) if len(self.keys) else np.zeros(len(wanted), bool)
        return np.where(hit, pos, -1)

    def label_of(self, key: str) -> int:
        """The new label of a selected ``key``.

        Raises:
            KeyError: the key is not selected.
        """
        pos = int(self.positions([key])[0])
        if pos < 0:
            raise KeyError(f"sample {key!r} is not in the selection")
        return int(self.labels[pos])

    def relabel(self, old: np.ndarray) -> np.ndarray:
        """New labels of old labels (KeyError for an old label without a selected sample)."""
        old = np.asarray(old, dtype=np.int64)
        pos = np.searchsorted(self.old_classes, old)
        pos[pos >= len(self.old_classes)] = 0
        if len(old) and not (self.old_classes[pos] == old).all():
            missing = sorted(set(old[self.old_classes[pos] != old].tolist()))
            raise KeyError(f"old label(s) {missing[:5]} have no selected sample")
        return self.new_of_old[pos]

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``label_map.parquet``, ``selected.parquet`` and ``selection.json`` (report), atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        label_map = pa.table({"old_label": self.old_classes, "new_label": self.new_of_old},
                             schema=LABEL_MAP_SCHEMA)
        write_table(label_map, folder / "label_map.parquet", LABEL_MAP_SCHEMA)
        selected = pa.table({"key": self.keys.tolist(), "label": self.labels, "old_label": self.old_labels},
                            schema=SELECTED_SCHEMA)
        write_table(selected, folder / "selected.parquet", SELECTED_SCHEMA)
        atomic_write_text(folder / "selection.json", json.dumps(self.report, indent=2, sort_keys=True))


def summary(report: dict[str, Any]) -> str:
    """What the selection did, in a few lines (printed when training starts): samples kept, dropped per
    reason, labels merged, and what a ``review.csv`` decided."""
    dropped = ", ".join(f"{n} {reason}" for reason, n in report.get("dropped", {}).items() if n) or "none"
    lines = [f"selection: kept {report['selected']} of {report['total']} samples; dropped: {dropped}",
             f"  labels: {report['classes_selected']} of {report['classes_total']} kept, "
             f"{report['merged_classes']} merged into others ({len(report['merge_groups'])} group(s)) "
             f"-> {report['num_classes']} classes"]
    if "relabelled" in report:
        lines.append(f"  relabelled: {report['relabelled']} samples")
    review = report.get("review")
    if review:
        decided = ", ".join(f"{n} {kind}" for kind, n in review["rows"].items())
        lines.append(f"  review {review['file']}: {decided}; dropped {review['dropped_by_review']}, "
                     f"kept against mining {review.get('kept_by_review', 0)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ views
def open_views(shards_dir: str | os.PathLike, run_dir: str | os.PathLike | None,
               limits: Limits = DEFAULT_LIMITS) -> RunViews:
    """DuckDB views: ``shard_samples`` always; ``samples``, ``classes``, ``pairs`` with a run folder.

    The connection is read-only (:mod:`fr_data.query.readonly`): a ``query`` or ``where`` from a config
    can read only these views, within ``limits`` (memory, time per query).

    Raises:
        DataError: the shard manifest or the run folder does not exist.
    """
    manifest = samples_path(shards_dir)
    if not manifest.is_file():
        raise DataError(manifest, "", "shard manifest not found (did sharding finish?)")
    check_inputs(manifest, run_dir)
    if run_dir is not None:
        return open_run(run_dir, shards=manifest, limits=limits)
    return open_view_files({"shard_samples": manifest}, limits)


#: The columns training reads from each mining run table, checked before any SQL runs.
RUN_COLUMNS = {"samples": ["key", "label", "suspect_mislabel", "duplicate_of", "split"],
               "classes": ["label", "nearest_label", "merge_candidate"],
               "pairs": ["key_a", "key_b", "kind"]}
#: Run table columns whose values must be unique, and those holding labels (never negative).
RUN_UNIQUE = {"samples": ["key"], "classes": ["label"]}
RUN_LABELS = {"samples": ["label"], "classes": ["label", "nearest_label"]}


def check_inputs(manifest: Path, run_dir: str | os.PathLike | None) -> None:
    """Check the shard manifest and the mining run tables training reads (types, nulls, unique keys,
    non-negative labels), so bad input is a DataError naming the file and row before anything runs."""
    read_input_samples(manifest, ["key", "label", "shard"])
    if run_dir is None:
        return
    for name, columns in RUN_COLUMNS.items():
        path = rf.table_path(run_dir, name)
        if name == "samples" or path.is_file():
            table = rf.read(run_dir, name, columns=columns)
            for column in RUN_UNIQUE.get(name, []):
                require_unique(table, column, path)
            for column in RUN_LABELS.get(name, []):
                require_non_negative(table, column, path)


def query_table(rv: RunViews, sql: str, where: str, params: dict[str, Any] | None = None) -> pa.Table:
    """Run ``sql`` (``$name`` parameters bound from ``params``); a rejected query, or one that hits a
    limit, becomes a ConfigError naming the config field ``where``."""
    try:
        reader = run_query(rv, sql, params)
        return reader.read_all() if reader is not None else pa.table({})
    except (QueryError, duckdb.Error) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _strings(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy(zero_copy_only=False).astype(str)


# ------------------------------------------------------------------------------------------- candidates
@dataclass
class Candidates:
    """Every shard sample with the mining columns the filters need, sorted by key."""

    keys: np.ndarray
    labels: np.ndarray
    columns: dict[str, np.ndarray]


def load_candidates(rv: RunViews, has_run: bool) -> Candidates:
    """The shard samples, joined (by key) with the mining run's flags when a run is given.

    Raises:
        DataError: a key whose mining label differs from its shard label (the run is of other data).
    """
    if not has_run:
        table = query_table(rv, "SELECT key, label FROM shard_samples ORDER BY key", "shard manifest")
        keys, labels = _strings(table, "key"), table.column("label").to_numpy()
        return _sorted(Candidates(keys, labels, {}), rv.views["shard_samples"])
    sql = ("SELECT s.key, s.label, m.label AS mined_label, m.key IS NOT NULL AS in_run, "
           "coalesce(m.suspect_mislabel, false) AS suspect, m.duplicate_of IS NOT NULL AS duplicate, "
           "m.split FROM shard_samples s LEFT JOIN samples m ON s.key = m.key ORDER BY s.key")
    table = query_table(rv, sql, "mining run")
    labels = table.column("label").to_numpy()
    mined = table.column("mined_label").to_numpy(zero_copy_only=False)
    in_run = table.column("in_run").to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(in_run & (np.nan_to_num(mined.astype(float), nan=-1) != labels))
    if len(bad):
        raise DataError(rv.views["samples"], f"key {table.column('key')[int(bad[0])]}",
                        f"{len(bad)} sample(s) have another label in the mining run than in the shards")
    columns = {name: table.column(name).to_numpy(zero_copy_only=False)
               for name in ("in_run", "suspect", "duplicate", "split")}
    return _sorted(Candidates(_strings(table, "key"), labels, columns), rv.views["samples"])


def _sorted(cand: Candidates, source: os.PathLike | str) -> Candidates:
    """Candidates in numpy's key order (what every binary search here assumes), whatever SQL sorted.

    Raises:
        DataError: a key that occurs twice (in the shard manifest, or in the run's samples).
    """
    order = np.argsort(cand.keys, kind="stable")
    keys = cand.keys[order]
    twice = np.flatnonzero(keys[1:] == keys[:-1])
    if len(twice):
        raise DataError(source, f"key {keys[twice[0]]}", f"{len(twice)} key(s) occur more than once")
    return Candidates(keys, cand.labels[order], {k: v[order] for k, v in cand.columns.items()})


def read_key_list(path: str | os.PathLike) -> np.ndarray:
    """Keys from a text file (one per line, blank lines ignored) or a Parquet file with a ``key`` column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "", "key list not found")
    if path.suffix == ".parquet":
        schema = pq.read_schema(path)
        if "key" not in schema.names:
            raise DataError(path, "", f"key list has no 'key' column (columns: {schema.names})")
        return _strings(pq.read_table(path, columns=["key"]), "key")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return np.asarray([line for line in lines if line], dtype=str)


def _member_mask(keys: np.ndarray, wanted: np.ndarray, source: str) -> np.ndarray:
    """Boolean mask of ``keys`` (sorted) present in ``wanted``; keys outside ``keys`` are an error."""
    wanted = np.unique(wanted.astype(str))
    pos = np.searchsorted(keys, wanted)
    pos[pos >= len(keys)] = 0
    known = keys[pos] == wanted if len(keys) else np.zeros(len(wanted), bool)
    if not known.all():
        raise DataError(source, f"key {wanted[~known][0]}",
                        f"{int((~known).sum())} key(s) are not in the shards")
    mask = np.zeros(len(keys), bool)
    mask[pos[known]] = True
    return mask


def keep_conditions(cfg: SelectionConfig, rv: RunViews, cand: Candidates,
                    has_run: bool) -> dict[str, np.ndarray]:
    """For each active drop reason (in ``DROP_REASONS`` order), the mask of samples that pass it."""
    conditions: dict[str, np.ndarray] = {}
    if cfg.key_list is not None:
        conditions["key_list"] = _member_mask(cand.keys, read_key_list(cfg.key_list), cfg.key_list)
    if cfg.query is not None:
        table = query_table(rv, cfg.query, "selection.query")
        if "key" not in table.column_names:
            raise ConfigError(f"selection.query must return a 'key' column, got {table.column_names}")
        conditions["query"] = _member_mask(cand.keys, _strings(table, "key"), "selection.query")
    if cfg.where is not None:
        view = "samples" if has_run else "shard_samples"
        table = query_table(rv, f"SELECT key FROM {view} WHERE ({cfg.where})", "selection.where")
        conditions["where"] = _member_mask(cand.keys, _strings(table, "key"), "selection.where")
    if has_run:
        conditions["not_in_run"] = cand.columns["in_run"].astype(bool)
    _mining_conditions(cfg, cand, has_run, conditions)
    return conditions


def _mining_conditions(cfg: SelectionConfig, cand: Candidates, has_run: bool,
                       conditions: dict[str, np.ndarray]) -> None:
    wanted = {"split": cfg.splits is not None, "suspect": cfg.drop_suspects, "duplicate": cfg.drop_duplicates}
    if any(wanted.values()) and not has_run:
        active = [name for name, on in wanted.items() if on]
        raise ConfigError(f"selection filters {active} need data.run (a mining run folder)")
    if wanted["split"]:
        conditions["split"] = np.isin(cand.columns["split"].astype(str), np.asarray(cfg.splits, dtype=str))
    if wanted["suspect"]:
        conditions["suspect"] = ~cand.columns["suspect"].astype(bool)
    if wanted["duplicate"]:
        conditions["duplicate"] = ~cand.columns["duplicate"].astype(bool)


def overlap_conditions(folder: str | os.PathLike, cand: Candidates,
                       review: Review | None = None) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The samples that pass ``exclude_overlap``: not of a class that overlaps an evaluation set
    (``overlap_class``), not a training image leaked into one (``overlap_image``); the ``keep`` decisions
    of the review's overlap section let their class or image through (``decisions.apply_overlap``), and
    what they kept.

    Raises:
        DataError: the folder names a label or key the shards do not have (an audit of other data).
    """
    labels, keys = overlap_folder.excluded(folder)
    unknown = labels - set(np.unique(cand.labels).tolist())
    if unknown:
        raise DataError(Path(folder) / overlap_folder.CLASSES_FILE, f"label {min(unknown)}",
                        f"{len(unknown)} overlapping label(s) are not in the shards")
    leaked = _member_mask(cand.keys, np.asarray(sorted(keys), dtype=str),
                          os.fspath(Path(folder) / overlap_folder.OVERLAP_FILE))
    conditions = {"overlap_class": ~np.isin(cand.labels, np.fromiter(labels, np.int64, len(labels))),
                  "overlap_image": ~leaked}
    kept = review_decisions.apply_overlap(review, cand.keys, cand.labels, conditions, keys) if review else {}
    return conditions, kept


# ------------------------------------------------------------------------------------------------ merges
def merge_pairs(rv: RunViews) -> list[tuple[int, int]]:
    """``(label, nearest_label)`` of every ``merge_candidate`` class of the run."""
    sql = ("SELECT label, nearest_label FROM classes WHERE merge_candidate AND nearest_label IS NOT NULL "
           "ORDER BY label")
    table = query_table(rv, sql, "selection.merge_classes (classes.parquet)")
    return list(zip(table.column("label").to_pylist(), table.column("nearest_label").to_pylist()))


def relabel(old_labels: np.ndarray,
            representative: dict[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(new labels, old classes, new label per old class)``, contiguous in sorted representative order."""
    old_classes = np.unique(old_labels)
    reps = np.asarray([representative.get(int(c), int(c)) for c in old_classes], dtype=np.int64)
    new_of_old = np.unique(reps, return_inverse=True)[1].astype(np.int64).reshape(-1)
    new_labels = new_of_old[np.searchsorted(old_classes, old_labels)]
    return new_labels, old_classes, new_of_old


# ----------------------------------------------------------------------------------------------- resolve
def resolve_selection(cfg: SelectionConfig, shards_dir: str | os.PathLike,
                      run_dir: str | os.PathLike | None) -> Selection:
    """Apply the selection config to the shards (and mining run) and relabel the survivors.

    Raises:
        ConfigError: a rejected SQL query or predicate (DuckDB's message names the bad column), a
            mining filter without a run, or nothing selected.
        DataError: missing files, keys that are not in the shards, labels that disagree with the run.
    """
    review = read_review(cfg.review) if cfg.review is not None else None
    rv = open_views(shards_dir, run_dir, Limits(memory_limit=cfg.sql_memory_limit, timeout_s=cfg.sql_timeout_s))
    try:
        cand = load_candidates(rv, run_dir is not None)
        conditions = keep_conditions(cfg, rv, cand, run_dir is not None)
        by_review = review_decisions.apply_filters(review, cand.keys, conditions) if review else {}
        if review is not None:
            review_decisions.check_overlap_rows(review, cfg.exclude_overlap)
        overlap_kept: dict[str, int] = {}
        if cfg.exclude_overlap is not None:  # only a "keep" of the review's overlap section lifts it
            overlap, overlap_kept = overlap_conditions(cfg.exclude_overlap, cand, review)
            conditions.update(overlap)
        keep, dropped = np.ones(len(cand.keys), bool), {}
        for reason, passes in conditions.items():
            dropped[reason] = int((keep & ~passes).sum())
            keep &= passes
        pairs = merge_pairs(rv) if cfg.merge_classes else []
        if cfg.merge_classes and run_dir is None:
            raise ConfigError("selection.merge_classes needs data.run (a mining run folder)")
    finally:
        rv.con.close()
    labels = cand.labels
    if review is not None:
        pairs, merged = review_decisions.apply_merges(review, cand.keys, cand.labels, pairs)
        labels, relabelled = review_decisions.apply_relabels(review, cand.keys, cand.labels)
        merged.update(relabelled)
    if not keep.any():
        raise ConfigError(f"the selection keeps no sample of {len(keep)} (dropped: {dropped})")
    old = labels[keep].astype(np.int64)
    new, old_classes, new_of_old = relabel(old, merge_representatives(pairs))
    report = _report(cand, keep, dropped, old_classes, new_of_old)
    if review is not None:
        report["review"] = review_decisions.review_report(review, dropped["review"], by_review, merged)
    if cfg.exclude_overlap is not None:
        report["overlap"] = {"folder": os.fspath(cfg.exclude_overlap), "classes": dropped["overlap_class"],
                             "images": dropped["overlap_image"], **overlap_kept}
    return Selection(cand.keys[keep], new, old, old_classes, new_of_old, report)


def _report(cand: Candidates, keep: np.ndarray, dropped: dict[str, int], old_classes: np.ndarray,
            new_of_old: np.ndarray) -> dict[str, Any]:
    groups = [old_classes[new_of_old == g].tolist() for g in np.flatnonzero(np.bincount(new_of_old) > 1)]
    return {"total": int(len(keep)), "selected": int(keep.sum()), "dropped": dropped,
            "classes_total": int(len(np.unique(cand.labels))), "classes_selected": int(len(old_classes)),
            "num_classes": int(new_of_old.max()) + 1,
            "merged_classes": int(len(old_classes) - new_of_old.max() - 1),
            "merge_groups": groups}
