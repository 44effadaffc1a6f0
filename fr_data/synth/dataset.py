"""Build a synthetic face data set: plan identities, labels and defects, render in parallel, write the
InsightFace RecordIO layout, the ground-truth ``attributes.parquet``, verification packs and ``synth.json``.

Every random choice comes from generators keyed by ``(seed, stream, ...)``; rendering uses one generator
per identity, so outputs are byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa

from fr_data.folders import synth_folder
from fr_data.io.atomic import atomic_write_text
from fr_data.io.parquet import write_table
from fr_data.io.publish import output_lock
from fr_data.formats.recordio import write_insightface
from fr_data.synth.defects import (LabelPlan, near_duplicate, plan_duplicates, plan_labels, plan_mislabels,
                                   split_images)
from fr_data.synth.identity import identity_group, sample_identity
from fr_data.synth.packs import PACKS, PackSpec, PairPlan, pack_variations, plan_pairs
from fr_data.synth.render import prepare_texture, render
from fr_data.synth.texture import build_texture
from fr_data.synth.variation import TRAIN_PRIOR, Variations, degrade, sample_variations
from fr_data.formats.verification import save_bin
from fr_data.io.hashing import file_sha256

__all__ = ["ATTRIBUTES_SCHEMA", "SynthConfig", "TrainPlan", "plan_train", "generate", "generate_packs",
           "RENDER_CHUNK", "render_chunks", "pack_slots"]

GENERATOR_VERSION = 1
RENDER_CHUNK = 32  # images rendered per vectorised call (keeps the working set in cache)

#: Ground truth per training image, one row per record of ``train.rec``.
ATTRIBUTES_SCHEMA = pa.schema([
    pa.field("source_index", pa.int64(), nullable=False),  # RecordIO key
    pa.field("label", pa.int64(), nullable=False),  # stored (possibly wrong) label
    pa.field("true_label", pa.int64(), nullable=False),  # main label of the true identity
    pa.field("true_identity", pa.int64(), nullable=False),
    pa.field("label_identity", pa.int64(), nullable=False),  # identity the stored label belongs to
    pa.field("yaw", pa.float32(), nullable=False),  # degrees, + = face turned to image right
    pa.field("roll", pa.float32(), nullable=False),  # degrees
    pa.field("scale", pa.float32(), nullable=False),  # resolution factor 1 / downsample
    pa.field("group", pa.int8(), nullable=False),  # demographic-like group 0-3
    pa.field("duplicate_of", pa.int64(), nullable=True),  # source_index of the original image
    pa.field("face_scale", pa.float32(), nullable=False),  # face size relative to the canonical crop
    pa.field("jpeg_quality", pa.int16(), nullable=False),
    pa.field("noise", pa.float32(), nullable=False),  # sensor-noise std (0-255 scale)
    pa.field("mislabeled", pa.bool_(), nullable=False),  # label_identity != true_identity
    pa.field("split_from", pa.int64(), nullable=True),  # main label of a split identity (image stored under its 2nd label)
])


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic data set (everything that changes the output bytes).

    Attributes:
        identities: training identities.
        images_per_identity: base images per training identity (before near-duplicates).
        seed: data-set seed.
        mislabel_rate: share of base images stored under another identity's label.
        duplicate_rate: near-duplicates added, as a share of base images.
        cross_duplicate_share: share of near-duplicates stored under another identity's label.
        split_identity_rate: share of identities whose images are split over two labels.
        holdout_identities: identities used only by the verification packs.
        pairs: pairs per verification pack (half genuine).
    """

    identities: int
    images_per_identity: int
    seed: int = 0
    mislabel_rate: float = 0.05
    duplicate_rate: float = 0.02
    cross_duplicate_share: float = 0.3
    split_identity_rate: float = 0.02
    holdout_identities: int = 100
    pairs: int = 600

    def __post_init__(self) -> None:
        if self.identities < 1 or self.images_per_identity < 1:
            raise ValueError("need at least one identity and one image per identity")
        for name in ("mislabel_rate", "duplicate_rate", "cross_duplicate_share", "split_identity_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.pairs and self.holdout_identities < 2:
            raise ValueError("verification pairs need at least 2 held-out identities")


@dataclass(frozen=True)
class TrainPlan:
    """Everything about the training images except their pixels (row = planned image).

    Rows ``0 .. N*M-1`` are base images grouped by identity; the near-duplicates follow.
    """

    identity: np.ndarray
    label: np.ndarray
    variations: Variations
    duplicate_src: np.ndarray  # row of the copied image, -1 for base images
    split_from: np.ndarray  # -1 unless stored under a split identity's second label
    groups: np.ndarray  # (N,) group of each training identity
    labels: LabelPlan
    order: np.ndarray = field(repr=False)  # rows in record order (grouped by label)

    @property
    def source_index(self) -> np.ndarray:
        """RecordIO key of every row."""
        keys = np.empty(len(self.order), np.int64)
        keys[self.order] = np.arange(1, len(self.order) + 1)
        return keys


def plan_train(cfg: SynthConfig) -> TrainPlan:
    """Plan labels, defects and per-image variation of the training images (no rendering)."""
    n, m = cfg.identities, cfg.images_per_identity
    rng = np.random.default_rng([cfg.seed, 4])
    groups = np.array([identity_group(cfg.seed, i) for i in range(n)], np.int8)
    labels = plan_labels(rng, n, cfg.split_identity_rate)
    identity = np.repeat(np.arange(n, dtype=np.int64), m)
    label = split_images(rng, identity, labels)
    split_from = np.where(label != labels.primary[identity], labels.primary[identity], -1)
    rows, wrong = plan_mislabels(rng, identity, groups, cfg.mislabel_rate)
    label[rows] = labels.primary[wrong]
    split_from[rows] = -1
    dups = plan_duplicates(rng, identity, groups, cfg.duplicate_rate, cfg.cross_duplicate_share)
    dup_label = np.where(dups.cross, labels.primary[dups.label_identity], label[dups.source])
    base_var = sample_variations(np.random.default_rng([cfg.seed, 1]), n * m, TRAIN_PRIOR)
    identity = np.concatenate([identity, identity[dups.source]])
    label = np.concatenate([label, dup_label])
    split_from = np.concatenate([split_from, np.where(dups.cross, -1, split_from[dups.source])])
    duplicate_src = np.concatenate([np.full(n * m, -1, np.int64), dups.source])
    variations = Variations.concat([base_var, base_var.take(dups.source)])
    order = np.lexsort((np.arange(len(label)), label))
    return TrainPlan(identity, label, variations, duplicate_src, split_from, groups, labels, order)


# ------------------------------------------------------------------------------------------------
# Rendering tasks (run in worker processes)


@dataclass(frozen=True)
class RenderTask:
    """Render ``variations`` of one identity, then near-duplicates of the images at ``duplicates``."""

    seed: int
    identity: int
    stream: int
    variations: Variations
    duplicates: np.ndarray


def render_chunks(seed: int, identity: int, stream: int, variations: Variations
                  ) -> Iterator[tuple[np.ndarray, list[bytes]]]:
    """The images of one identity, ``RENDER_CHUNK`` at a time: the clean renders (uint8, before any capture
    degradation) and their JPEG bytes after :func:`fr_data.synth.variation.degrade` (the stored images).
    The degradation's generator is keyed by ``(seed, 2, stream, identity)``."""
    ident = sample_identity(seed, identity)
    texture = prepare_texture(build_texture(ident))
    rng = np.random.default_rng([seed, 2, stream, identity])
    for start in range(0, len(variations), RENDER_CHUNK):
        part = variations.take(slice(start, start + RENDER_CHUNK))
        renders = render(ident, texture, part)
        clean = np.clip(np.rint(renders), 0, 255).astype(np.uint8)
        yield clean, degrade(renders, part, rng)


def render_task(task: RenderTask) -> tuple[list[bytes], list[tuple[bytes, int]]]:
    """Worker entry point: JPEG bytes of the task's images and ``(bytes, quality)`` of its duplicates."""
    images: list[bytes] = []
    for _, stored in render_chunks(task.seed, task.identity, task.stream, task.variations):
        images.extend(stored)
    dup_rng = np.random.default_rng([task.seed, 3, task.stream, task.identity])
    dups = [near_duplicate(images[r], int(task.variations.jpeg_quality[r]), dup_rng) for r in task.duplicates]
    return images, dups


def run_tasks(tasks: Iterable[RenderTask], workers: int) -> Iterator[tuple[list[bytes], list]]:
    """Run render tasks in order, in ``workers`` processes (in this process when ``workers <= 1``)."""
    if workers <= 1:
        yield from map(render_task, tasks)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        yield from pool.map(render_task, tasks, chunksize=4)


def render_slots(seed: int, slot_identity: np.ndarray, slot_var: Variations, stream: int,
                 workers: int) -> list[bytes]:
    """JPEG bytes of image slots: slot ``i`` shows identity ``slot_identity[i]`` under ``slot_var``'s row
    ``i``. Each identity's slots are rendered by one task of render stream ``stream``."""
    owners = np.unique(slot_identity)
    slots = [np.flatnonzero(slot_identity == h) for h in owners]
    tasks = (RenderTask(seed, int(h), stream, slot_var.take(s), np.zeros(0, np.int64))
             for h, s in zip(owners, slots))
    images: list[bytes] = [b""] * len(slot_identity)
    for s, (rendered, _) in zip(slots, run_tasks(tasks, workers)):
        for slot, data in zip(s, rendered):
            images[slot] = data
    return images


def _duplicates_by_identity(cfg: SynthConfig, plan: TrainPlan) -> list[np.ndarray]:
    """For each training identity, the plan rows of the near-duplicates of its images (ascending)."""
    dup_rows = np.flatnonzero(plan.duplicate_src >= 0)
    owner = plan.duplicate_src[dup_rows] // cfg.images_per_identity
    dup_rows = dup_rows[np.argsort(owner, kind="stable")]
    bounds = np.searchsorted(np.sort(owner), np.arange(cfg.identities + 1))
    return [dup_rows[bounds[i]:bounds[i + 1]] for i in range(cfg.identities)]


def _train_tasks(cfg: SynthConfig, plan: TrainPlan, dups: list[np.ndarray]) -> Iterator[RenderTask]:
    m = cfg.images_per_identity
    for ident in range(cfg.identities):
        mine = plan.duplicate_src[dups[ident]] - ident * m
        yield RenderTask(cfg.seed, ident, 1, plan.variations.take(slice(ident * m, (ident + 1) * m)), mine)


# ------------------------------------------------------------------------------------------------
# Training set


class _Spool:
    """Rendered images parked in an anonymous temporary file until they are written in label order."""

    def __init__(self, folder: Path, rows: int):
        self._file = tempfile.TemporaryFile(dir=folder)
        self.offset = np.zeros(rows, np.int64)
        self.length = np.zeros(rows, np.int64)

    def put(self, row: int, data: bytes) -> None:
        self.offset[row] = self._file.seek(0, os.SEEK_END)
        self.length[row] = len(data)
        self._file.write(data)

    def get(self, row: int) -> bytes:
        self._file.seek(self.offset[row])
        return self._file.read(self.length[row])

    def close(self) -> None:
        self._file.close()


def write_train(cfg: SynthConfig, plan: TrainPlan, out: Path, workers: int) -> dict:
    """Render the training images and write ``train.rec/.idx``, ``property`` and ``attributes.parquet``."""
    spool = _Spool(out, len(plan.label))
    quality = plan.variations.jpeg_quality.astype(np.int64)
    dup_rows = _duplicates_by_identity(cfg, plan)
    try:
        for ident, (images, dups) in enumerate(run_tasks(_train_tasks(cfg, plan, dup_rows), workers)):
            for k, data in enumerate(images):
                spool.put(ident * cfg.images_per_identity + k, data)
            for row, (data, q) in zip(dup_rows[ident], dups):
                spool.put(row, data)
                quality[row] = q
        items = ((int(plan.label[row]), spool.get(row)) for row in plan.order)
        counts = write_insightface(out, items)
    finally:
        spool.close()
    write_table(attributes_table(plan, quality), synth_folder.attributes_path(out), ATTRIBUTES_SCHEMA,
                metadata={"generator": "hardmine.synth", "version": GENERATOR_VERSION})
    return counts


def attributes_table(plan: TrainPlan, quality: np.ndarray) -> pa.Table:
    """The ground-truth table, rows in record order."""
    keys = plan.source_index
    o = plan.order
    var = plan.variations
    dup = plan.duplicate_src[o]
    split = plan.split_from[o]
    label_identity = plan.labels.label_identity[plan.label[o]]
    columns = {
        "source_index": keys[o],
        "label": plan.label[o],
        "true_label": plan.labels.primary[plan.identity[o]],
        "true_identity": plan.identity[o],
        "label_identity": label_identity,
        "yaw": var.yaw[o].astype(np.float32),
        "roll": var.roll[o].astype(np.float32),
        "scale": (1.0 / var.downsample[o]).astype(np.float32),
        "group": plan.groups[plan.identity[o]].astype(np.int8),
        "duplicate_of": pa.array(np.where(dup >= 0, keys[np.maximum(dup, 0)], 0), mask=dup < 0),
        "face_scale": var.face_scale[o].astype(np.float32),
        "jpeg_quality": quality[o].astype(np.int16),
        "noise": var.noise[o].astype(np.float32),
        "mislabeled": label_identity != plan.identity[o],
        "split_from": pa.array(np.maximum(split, 0), mask=split < 0),
    }
    return pa.table(columns)


# ------------------------------------------------------------------------------------------------
# Verification packs


def pack_slots(cfg: SynthConfig, index: int, spec: PackSpec) -> tuple[PairPlan, np.ndarray, Variations]:
    """Pack ``index``'s pairs over the held-out identities, and the identity and variation of every image
    slot in ``.bin`` order (slots ``2i`` and ``2i + 1`` form pair ``i``). Its render stream is ``10 + index``."""
    holdout = np.arange(cfg.identities, cfg.identities + cfg.holdout_identities, dtype=np.int64)
    groups = np.array([identity_group(cfg.seed, int(i)) for i in holdout])
    pairs = plan_pairs(np.random.default_rng([cfg.seed, 5, index]), holdout, groups, cfg.pairs)
    slot_identity = np.stack([pairs.first, pairs.second], axis=1).ravel()  # interleaved
    return pairs, slot_identity, pack_variations(cfg.seed, index, spec, cfg.pairs)


def write_pack(cfg: SynthConfig, index: int, spec: PackSpec, out: Path, workers: int) -> dict:
    """Render and save one verification pack over the held-out identities; return its summary."""
    pairs, slot_identity, slot_var = pack_slots(cfg, index, spec)
    second = slot_var.take(np.arange(1, 2 * cfg.pairs, 2))
    images = render_slots(cfg.seed, slot_identity, slot_var, 10 + index, workers)
    save_bin(out / synth_folder.pack_file(spec.name), images, pairs.issame)
    return {"pairs": int(cfg.pairs), "genuine": int(pairs.issame.sum()), "description": spec.description,
            "second_downsample": sorted(int(v) for v in np.unique(second.downsample)),
            "second_abs_yaw": [float(np.abs(second.yaw).min()), float(np.abs(second.yaw).max())]}


# ------------------------------------------------------------------------------------------------
# Orchestration


def _summary(plan: TrainPlan, counts: dict) -> dict:
    var = plan.variations
    dup = plan.duplicate_src >= 0
    mislabeled = plan.labels.label_identity[plan.label] != plan.identity
    return {
        "num_images": int(counts["num_images"]),
        "num_classes": int(counts["num_classes"]),
        "num_identities": int(len(plan.groups)),
        "base_images": int((~dup).sum()),
        "mislabeled": int(mislabeled.sum()),
        "near_duplicates": int(dup.sum()),
        "cross_class_duplicates": int((dup & mislabeled).sum()),
        "split_identities": int((plan.labels.secondary >= 0).sum()),
        "split_images": int((plan.split_from >= 0).sum()),
        "group_identities": [int(v) for v in np.bincount(plan.groups, minlength=4)],
        "share_abs_yaw_ge_60": float(np.mean(np.abs(var.yaw) >= 60)),
        "share_scale_le_quarter": float(np.mean(var.downsample >= 4)),
    }



def generate_packs(cfg: SynthConfig, out: str | os.PathLike, workers: int = 1) -> dict:
    """Only the verification packs of ``cfg``'s held-out identities (no training set); ``packs.json`` last.

    The packs are byte-identical to those :func:`generate` writes for the same ``cfg``; a set of another
    ``seed`` holds other people, which is how an experiment gets validation and test identities disjoint
    from the training set's (and from each other).

    Raises:
        ValueError: ``cfg.pairs`` is 0.
    """
    if not cfg.pairs:
        raise ValueError("generate_packs needs pairs > 0")
    with output_lock(out, "packs folder"):
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / synth_folder.PACKS_INFO_FILE).unlink(missing_ok=True)
        packs = {spec.name: write_pack(cfg, i, spec, out, workers) for i, spec in enumerate(PACKS)}
        info = {"generator": "hardmine.synth", "version": GENERATOR_VERSION, "parameters": asdict(cfg),
                "packs": packs, "sha256": {synth_folder.pack_file(name): file_sha256(out / synth_folder.pack_file(name))
                           for name in packs}}
        atomic_write_text(out / synth_folder.PACKS_INFO_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")
        return info


def generate(cfg: SynthConfig, out: str | os.PathLike, workers: int = 1) -> dict:
    """Generate the whole data set into ``out``; return the ``synth.json`` content.

    Outputs (each written atomically; ``synth.json`` last, so its presence marks a complete set): ``train.rec``, ``train.idx``, ``property``,
    ``attributes.parquet``, one ``<pack>.bin`` per entry of ``PACKS`` and ``synth.json``.

    Args:
        cfg: data-set parameters.
        out: output folder (created if needed).
        workers: rendering processes; the output does not depend on it.
    """
    with output_lock(out, "synthetic data folder"):
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        synth_folder.info_path(out).unlink(missing_ok=True)  # present only once every other file is complete
        plan = plan_train(cfg)
        counts = write_train(cfg, plan, out, workers)
        packs = {spec.name: write_pack(cfg, i, spec, out, workers) for i, spec in enumerate(PACKS)} \
            if cfg.pairs else {}
        files = [synth_folder.REC_FILE, synth_folder.IDX_FILE, synth_folder.PROPERTY_FILE, synth_folder.ATTRIBUTES_FILE,
                 *(synth_folder.pack_file(p) for p in packs)]
        info = {"generator": "hardmine.synth", "version": GENERATOR_VERSION, "parameters": asdict(cfg),
                "counts": _summary(plan, counts), "packs": packs,
                "sha256": {name: file_sha256(out / name) for name in files}}
        atomic_write_text(synth_folder.info_path(out), json.dumps(info, indent=2, sort_keys=True) + "\n")
        return info
