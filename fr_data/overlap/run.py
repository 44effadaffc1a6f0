"""One overlap audit: training embeddings + embedded evaluation sets -> the overlap folder.

Class centres come from :mod:`fr_data.mining.centres` (the mean of a class's unit embeddings,
re-normalised), the searches from :mod:`fr_data.overlap.audit` with the project's exact k-NN (GPU when
present), the identity threshold from :mod:`fr_data.overlap.threshold`, and the duplicate threshold from
the mining config in force: its number, or with ``auto`` cleanlab's rule calibrated on this training set
(:func:`fr_data.mining.calibration.duplicate_cos` over a sample's nearest-neighbour cosines). When the
training shards are found (the manifest EMB names, or ``--samples``), the mining config's
``duplicates.pixel_min`` is set and an evaluation set carries images, its leak candidates are decided by
the pixel check instead (:class:`fr_data.overlap.audit.LeakPixels`; ``overlap.json: leak_pixel_check``
says per set whether it ran and why not). The folder
(:mod:`fr_data.folders.overlap_folder`) is written in a staging folder and published whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fr_data.folders import embeddings_folder as ef
from fr_data.folders import overlap_folder as of
from fr_data.folders.shard_folder import read_input_samples
from fr_data.io.errors import DataError
from fr_data.io.publish import staged_folder
from fr_data.mining.calibration import Calibration, duplicate_cos, fixed
from fr_data.mining.centres import Centres, accumulate_sums, make_centres
from fr_data.mining.config import AUTO, MiningConfig
from fr_data.mining.inputs import read_rows
from fr_data.mining.knnfn import KnnFn, default_knn
from fr_data.mining.pixel_check import THUMB, ZOOM_CROPS, image_reader
from fr_data.overlap.audit import LeakPixels, Matches, identity_matches, image_matches
from fr_data.overlap.sources import EvalSet
from fr_data.overlap.threshold import identity_threshold
from fr_data.overlap.timing import StageClock

__all__ = ["OverlapSettings", "TrainingSide", "audit_overlap", "open_training"]

CHUNK_ROWS = 65536


@dataclass
class OverlapSettings:
    """The knobs of an audit.

    Attributes:
        fpr: false-match rate of the calibrated identity threshold per evaluation query: the probability
            that a query of a person in no training class exceeds it against any of the C classes.
        threshold: an explicit identity threshold (overrides the calibration; 0.4 = the MegaFace rule).
        duplicate_cos: an explicit duplicate threshold (overrides the mining config).
        mining: the mining config whose ``duplicates.cos`` (and ``calibration.duplicate_nn_ratio``) apply.
        top_k: training classes searched per evaluation query.
        leak_k: training images searched per evaluation image.
        calibration_samples: training images sampled for the calibrations.
        seed: of that sample.
    """

    fpr: float = 1e-5
    threshold: float | None = None
    duplicate_cos: float | None = None
    mining: MiningConfig = field(default_factory=MiningConfig)
    top_k: int = 10
    leak_k: int = 5
    calibration_samples: int = 1000
    seed: int = 0


@dataclass
class TrainingSide:
    """The opened training embeddings and what the audit needs of them."""

    emb: ef.Embeddings
    of_sample: np.ndarray  # class id per row
    class_labels: np.ndarray  # label per class id
    ok: np.ndarray  # rows with a usable vector
    centres: Centres
    sha256: dict[str, list[int]] | None  # image digest -> training rows (None without a manifest)
    samples: Path | None = None  # the shard manifest (samples.parquet), when known


def open_training(emb_folder: str | os.PathLike, samples: str | os.PathLike | None,
                  clock: StageClock | None = None) -> TrainingSide:
    """Open EMB, compute its class centres (one streaming pass over the memmap: a segment sum per chunk,
    :func:`fr_data.mining.centres.add_class_sums`), and map image digests to rows from the shard manifest.
    ``clock`` times the stages ``open`` and ``centres``."""
    clock = clock or StageClock()
    with clock.stage("open", "training embeddings and byte hashes"):
        emb = ef.open_embeddings(emb_folder)
        if emb.n == 0:
            raise DataError(emb.array_path, "", "the training embeddings are empty")
        class_labels, of_sample = np.unique(emb.labels, return_inverse=True)
        manifest = _manifest(emb, samples)
        digests = None if manifest is None else _digests(emb, manifest)
    with clock.stage("centres", f"{len(class_labels)} class centres from {emb.n} images"):
        sums, ok, _ = accumulate_sums(emb.vectors, of_sample, len(class_labels), CHUNK_ROWS)
        centres = make_centres(sums, np.bincount(of_sample[ok], minlength=len(class_labels)))
    return TrainingSide(emb, of_sample, class_labels, ok, centres, digests, manifest)


def _manifest(emb: ef.Embeddings, samples: str | os.PathLike | None) -> Path | None:
    """``samples``, or the manifest ``EMB/run.json`` names (if it exists)."""
    if samples is not None:
        return Path(samples)
    recorded = emb.run_info.get("manifest")
    return Path(recorded) if isinstance(recorded, str) and Path(recorded).is_file() else None


def _digests(emb: ef.Embeddings, samples: Path) -> dict[str, list[int]]:
    """sha256 -> training rows, from the manifest ``samples``."""
    table = read_input_samples(samples, ["key", "sha256"])
    digest_of = dict(zip(table.column("key").to_pylist(), table.column("sha256").to_pylist()))
    out: dict[str, list[int]] = {}
    for row, key in enumerate(emb.index.column("key").to_pylist()):
        if key in digest_of:
            out.setdefault(digest_of[key], []).append(row)
    return out


def _calibration_sample(train: TrainingSide, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    valid = np.flatnonzero(train.ok)
    rows = np.sort(np.random.default_rng(seed).choice(valid, min(size, len(valid)), replace=False))
    return rows, read_rows(train.emb.vectors, rows)


def duplicate_threshold(settings: OverlapSettings, train: TrainingSide, rows: np.ndarray, x: np.ndarray,
                        knn: KnnFn) -> Calibration:
    """The duplicate threshold in force: ``--duplicate-cos``, the mining config's number, or calibrated."""
    if settings.duplicate_cos is not None:
        return fixed("duplicates.cos", settings.duplicate_cos)
    if settings.mining.duplicates.cos != AUTO:
        return fixed("duplicates.cos", float(settings.mining.duplicates.cos))
    if train.emb.n < 2:
        return fixed("duplicates.cos", 1.0)
    res = knn(x, train.emb.vectors, 2)
    sims, ids = np.asarray(res.sims, np.float32), np.asarray(res.ids, np.int64)
    top1 = np.where(ids[:, 0] == rows, sims[:, 1], sims[:, 0])
    found = duplicate_cos(top1, settings.mining.calibration.duplicate_nn_ratio)
    if found.value is None:
        found.value = 1.0
    return found


def audit_overlap(train: TrainingSide, eval_sets: list[EvalSet], out: str | os.PathLike,
                  settings: OverlapSettings, *, knn: KnnFn | None = None, overwrite: bool = False,
                  record: dict[str, Any] | None = None, clock: StageClock | None = None) -> dict[str, Any]:
    """Search every (embedded) evaluation set against ``train`` and publish the overlap folder ``out``.

    ``clock`` (already holding ``open``/``centres``/``embed`` when the caller timed them) times the
    audit's stages; ``overlap.json`` ``seconds`` gives them all.

    Returns:
        The overlap.json content.
    """
    knn = knn or default_knn()
    clock = clock or StageClock()
    with staged_folder(out, overwrite, "overlap folder") as staging:
        rows, x = _calibration_sample(train, settings.calibration_samples, settings.seed)
        classes = len(train.centres.active)
        with clock.stage("identity_threshold", f"{len(rows)} sampled images x {classes} class centres"):
            ident = identity_threshold(settings.threshold, x, train.of_sample[rows], train.centres.db,
                                       train.centres.active, settings.fpr)
        with clock.stage("duplicate_threshold", f"{len(rows)} sampled images x {train.emb.n} training images"):
            dup = duplicate_threshold(settings, train, rows, x, knn)
        read_train, no_pixels = image_reader(train.emb, train.samples, settings.mining)
        pixels = None if read_train is None else LeakPixels(read_train, float(settings.mining.duplicates.pixel_min))
        tables, counts, capped, checks = [], {}, {}, {}
        for eval_set in eval_sets:
            queries = len(set(eval_set.identities)) if eval_set.identities is not None else len(eval_set)
            with clock.stage("identity_search", f"{eval_set.name}: {queries} queries x {classes} centres, "
                             f"top {settings.top_k}"):
                found, full = identity_matches(eval_set.vectors, eval_set.identities, train.centres.db,
                                               train.centres.active, ident.value, settings.top_k, knn)
            with clock.stage("leak_search", f"{eval_set.name}: {len(eval_set)} images x {train.emb.n} training "
                             f"images, top {settings.leak_k}"):
                leaks = image_matches(eval_set.vectors, eval_set.images, train.emb.vectors, train.of_sample,
                                      train.sha256, dup.value, settings.leak_k, knn, pixels)
            tables += [_rows(eval_set, found, "identity", train), _rows(eval_set, leaks, "image", train)]
            counts[eval_set.name] = _counts(eval_set, found, leaks, train)
            capped[eval_set.name] = full
            checks[eval_set.name] = _pixel_record(eval_set, leaks, min(settings.leak_k, train.emb.n), no_pixels)
        with clock.stage("write", "overlap.parquet, overlap_classes.parquet"):
            overlapping = of.write_tables(staging, pa.concat_tables(tables))
        info = {
            "inputs": {"embeddings": os.fspath(train.emb.folder),
                       "eval_sets": [{"name": s.name, "path": os.fspath(s.path), "kind": s.kind,
                                      "images": len(s), "identities": s.identities is not None}
                                     for s in eval_sets]},
            "model": record or {},
            "thresholds": {"identity": ident.record(), "duplicate": dup.record()},
            "leak_pixel_check": {
                "method": f"grey-level correlation of {THUMB}x{THUMB} thumbnails of the stored images, the best "
                          f"over centred zooms of either image (0 to {max(ZOOM_CROPS):.3f} of each side cropped)",
                "pixel_min": settings.mining.duplicates.pixel_min,
                "candidates": f"each evaluation image's top {settings.leak_k} training images by cosine; the "
                              "pixel check replaces the cosine rule for the sets it runs on",
                "sets": checks},
            "false_match_rate": _rate_record(eval_sets, classes, ident),
            "search": {"top_k": settings.top_k, "leak_k": settings.leak_k, "knn": getattr(knn, "name", repr(knn)),
                       "queries_with_all_top_k_above_threshold": capped,
                       "identity_queries": "each evaluation identity's centre (sets with identities), "
                                           "else each image"},
            "training": {"images": train.emb.n, "classes": classes,
                         "byte_hashes": train.sha256 is not None},
            "counts": counts,
            "warnings": _warnings(ident),
            "overlapping_classes": len(set(overlapping.column("label").to_pylist())),
            "seconds": clock.record(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        of.write_info(staging, info)
    return info


def _warnings(ident: Calibration) -> list[str]:
    """What a user must know before trusting an empty result: a calibrated identity threshold at the
    largest cosine (1.0) can never be exceeded, so no identity overlap is reported whatever the data."""
    if ident.method == "override" or ident.value < 1.0:
        return []
    return [(f"the identity threshold calibrated at --fpr {ident.params.get('fpr'):g} per query is 1.0: no cosine "
             "exceeds it, so no identity overlap can be reported. This backbone's impostor cosines (training images "
             "against other classes' centres) reach too high for that rate: audit with a stronger backbone, a "
             "larger --fpr, or --threshold")]


def _rate_record(eval_sets: list[EvalSet], classes: int, ident: Calibration) -> dict[str, Any]:
    """What the identity threshold's false-match rate means, for overlap.json.

    Calibrated: ``fpr`` is per evaluation query against all C classes (union bound over a per-pair rate of
    ``fpr / C``), so at most ``queries x fpr`` queries of people absent from training are expected to
    overlap some class by chance. An explicit threshold states no rate."""
    queries = sum(len(set(s.identities)) if s.identities is not None else len(s) for s in eval_sets)
    fpr = ident.params.get("fpr")
    if fpr is None:
        return {"per": None, "fpr": None, "queries": queries, "expected_chance_queries": None,
                "meaning": "explicit --threshold: no false-match rate is stated"}
    return {"per": "query", "fpr": fpr, "pair_rate": ident.params["pair_rate"], "classes": classes,
            "queries": queries, "expected_chance_queries": round(queries * fpr, 6),
            "meaning": f"a query (an evaluation identity's centre, or an image of a set without identities) of a "
                       f"person in none of the {classes} training classes exceeds the threshold against any of "
                       f"them with probability at most {fpr:g} (union bound: per (query, class) pair "
                       f"{ident.params['pair_rate']:.3g}); estimated by {ident.method} on the training set"}


def _rows(eval_set: EvalSet, m: Matches, match: str, train: TrainingSide) -> pa.Table:
    n = len(m)
    image = m.train_row >= 0
    train_key = [None] * n
    for i, key in zip(np.flatnonzero(image), train.emb.index.column("key").take(m.train_row[image]).to_pylist()):
        train_key[i] = key
    idx = m.eval_index
    identity = [eval_set.identities[i] for i in idx] if eval_set.identities is not None else [None] * n
    return pa.table({
        "eval_set": pa.array([eval_set.name] * n, pa.string()),
        "eval_index": pa.array(idx, pa.int64()),
        "eval_key": pa.array([eval_set.keys[i] for i in idx], pa.string()),
        "eval_identity": pa.array(identity, pa.string()),
        "label": pa.array(train.class_labels[m.class_id], pa.int64()),
        "cos": pa.array(m.cos, pa.float32()),
        "match": pa.array([match] * n, pa.string()),
        "rank": pa.array(m.rank, pa.int32()),
        "train_key": pa.array(train_key, pa.string()),
        "same_bytes": pa.array(m.same_bytes, pa.bool_()),
        "pixel_sim": pa.array(m.pixel_sim, pa.float32(), from_pandas=True),
    }, schema=pa.schema([*of.OVERLAP_SCHEMA, *of.OVERLAP_OPTIONAL]))


def _pixel_record(eval_set: EvalSet, leaks: Matches, k: int, no_pixels: str | None) -> dict[str, Any]:
    """``leak_pixel_check.sets[name]``: pairs checked and confirmed, or why the check was skipped."""
    if eval_set.images is None:
        return {"skipped": "the evaluation set holds no images (an embeddings folder): cosine rule"}
    if no_pixels is not None:
        return {"skipped": f"{no_pixels}: cosine rule"}
    return {"checked": len(eval_set) * k, "confirmed": int(np.sum(~np.isnan(leaks.pixel_sim)))}


def _counts(eval_set: EvalSet, found: Matches, leaks: Matches, train: TrainingSide) -> dict[str, Any]:
    out = {"images": len(eval_set),
           "identities": len(set(eval_set.identities)) if eval_set.identities is not None else None,
           "overlapping_classes": len(np.unique(found.class_id)),
           "images_of_overlapping_identities": len(np.unique(found.eval_index)),
           "leaked_eval_images": len(np.unique(leaks.eval_index)),
           "leaked_training_images": len(np.unique(leaks.train_row)),
           "same_bytes": int(leaks.same_bytes.sum())}
    if eval_set.identities is not None:
        out["overlapping_identities"] = len({eval_set.identities[i] for i in found.eval_index})
    return out
