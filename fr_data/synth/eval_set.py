"""Evaluation sets with planted overlap: the ground truth for auditing a benchmark against a training set.

An evaluation set is drawn for a synthetic training set (same :class:`SynthConfig`) and holds three kinds
of images, with the truth of each in ``truth.parquet``:

* **shared identities** (``overlap_identities`` K): new images of training identities (the same identity
  parameters, :func:`fr_data.synth.identity.sample_identity`; new pose, lighting and noise draws);
* **leaked images** (``leaked_images`` J): copies of training images, cycling through the copy kinds
  ``exact`` (the stored JPEG bytes), ``reencoded`` (another JPEG quality), ``resized`` (down to 80 pixels
  and back) and ``cropped`` (4 pixels off every side, resized back); each is paired with a new image of
  the same person, so its identity is shared too;
* **disjoint identities** (``disjoint_identities``): people who are in no training set or pack of the seed.

Every slot holds two images; the ``.bin`` pack ``overlap_eval.bin`` pairs the first image of slot ``k``
with the second image of slot ``k`` (genuine) for half of the slots, and with the second image of the next
such slot (impostor) for the other half. The same images are written as an image folder ``images/<person>/
<eval index>.jpg`` (one folder per evaluation identity). Copies come from clean training images only (a
base image stored under its own identity's label, not split, not a near-duplicate), and shared identities
are never split identities, so each shared person has exactly one training label.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from fr_data.folders import synth_folder
from fr_data.formats.recordio import RecordIOReader, unpack_image_record
from fr_data.formats.verification import save_bin
from fr_data.io.atomic import atomic_write_bytes, atomic_write_text
from fr_data.io.errors import DataError
from fr_data.io.hashing import file_sha256
from fr_data.io.parquet import write_table
from fr_data.io.publish import check_apart, staged_folder
from fr_data.synth.dataset import GENERATOR_VERSION, SynthConfig, TrainPlan, plan_train, render_slots
from fr_data.synth.variation import FRONTAL_PRIOR, encode_jpeg, sample_variations

__all__ = ["COPY_KINDS", "EVAL_PACK", "TRUTH_SCHEMA", "EvalSetConfig", "generate_eval_set", "near_copy"]

EVAL_PACK = "overlap_eval.bin"
TRUTH_FILE = "truth.parquet"
IMAGES_DIR = "images"
INFO_FILE = "eval.json"
COPY_KINDS = ("exact", "reencoded", "resized", "cropped")
_STREAM = 20  # render stream of evaluation images (training: 1, packs: 10 + pack index)

#: One row per evaluation image, in ``.bin`` order.
TRUTH_SCHEMA = pa.schema([
    pa.field("eval_index", pa.int64(), nullable=False),  # position in overlap_eval.bin
    pa.field("eval_path", pa.string(), nullable=False),  # the same image under images/
    pa.field("eval_identity", pa.int64(), nullable=False),  # synthetic person number
    pa.field("train_label", pa.int64(), nullable=True),  # training label of that person, null if disjoint
    pa.field("train_index", pa.int64(), nullable=True),  # RecordIO key of the copied training image
    pa.field("copy_kind", pa.string(), nullable=True),  # exact / reencoded / resized / cropped
])


@dataclass(frozen=True)
class EvalSetConfig:
    """Sizes of an evaluation set (module docstring)."""

    overlap_identities: int = 0
    leaked_images: int = 0
    disjoint_identities: int = 20

    def check(self, cfg: SynthConfig, plan: TrainPlan) -> None:
        """Refuse sizes the training set cannot supply (ValueError)."""
        if min(asdict(self).values()) < 0:
            raise ValueError("evaluation-set sizes must be >= 0")
        if self.overlap_identities > len(_unsplit(plan)):
            raise ValueError(f"--overlap-identities {self.overlap_identities}: the training set has only "
                             f"{len(_unsplit(plan))} identities stored under a single label")
        if self.leaked_images > len(_clean_rows(cfg, plan)):
            raise ValueError(f"--leaked-images {self.leaked_images}: the training set has only "
                             f"{len(_clean_rows(cfg, plan))} clean images to copy")
        if sum(asdict(self).values()) < 2:
            raise ValueError("an evaluation set needs at least 2 identities or leaked images (pairs)")


def _unsplit(plan: TrainPlan) -> np.ndarray:
    """Training identities stored under exactly one label."""
    return np.flatnonzero(plan.labels.secondary < 0)


def _clean_rows(cfg: SynthConfig, plan: TrainPlan) -> np.ndarray:
    """Plan rows of base images stored under their own identity's only label."""
    base = np.arange(cfg.identities * cfg.images_per_identity)
    own = plan.labels.label_identity[plan.label[base]] == plan.identity[base]
    return base[own & (plan.split_from[base] < 0) & (plan.labels.secondary[plan.identity[base]] < 0)]


def near_copy(jpeg: bytes, kind: str) -> bytes:
    """A copy of a training JPEG of ``kind`` (``COPY_KINDS``); ``exact`` returns the bytes unchanged."""
    if kind == "exact":
        return jpeg
    with Image.open(io.BytesIO(jpeg)) as img:
        rgb = img.convert("RGB")
    size = rgb.size
    if kind == "resized":
        rgb = rgb.resize((80, 80), Image.BILINEAR).resize(size, Image.BILINEAR)
    elif kind == "cropped":
        rgb = rgb.crop((4, 4, size[0] - 4, size[1] - 4)).resize(size, Image.BILINEAR)
    elif kind != "reencoded":
        raise ValueError(f"unknown copy kind {kind!r}")
    return encode_jpeg(np.asarray(rgb), 75)


def generate_eval_set(cfg: SynthConfig, train: str | os.PathLike, out: str | os.PathLike,
                      eval_cfg: EvalSetConfig, *, workers: int = 1, overwrite: bool = False) -> dict:
    """Write the evaluation set of ``eval_cfg`` for the training set ``train`` (made by
    :func:`fr_data.synth.generate` with ``cfg``) into the folder ``out``, published whole.

    Raises:
        DataError: ``train`` is not a complete synthetic set made with ``cfg``.
        ValueError: sizes the training set cannot supply.
    """
    train, out = Path(train), Path(out)
    check_apart(out, train)
    _check_train(cfg, train)
    plan = plan_train(cfg)
    eval_cfg.check(cfg, plan)
    rng = np.random.default_rng([cfg.seed, 8])
    shared = np.sort(rng.choice(_unsplit(plan), eval_cfg.overlap_identities, replace=False))
    leaked = rng.choice(_clean_rows(cfg, plan), eval_cfg.leaked_images, replace=False)
    first_disjoint = cfg.identities + cfg.holdout_identities
    disjoint = np.arange(first_disjoint, first_disjoint + eval_cfg.disjoint_identities, dtype=np.int64)
    slot_identity = np.concatenate([shared, plan.identity[leaked], disjoint]).astype(np.int64)
    n_slots = len(slot_identity)
    slot_var = sample_variations(np.random.default_rng([cfg.seed, 9]), 2 * n_slots, FRONTAL_PRIOR)
    rendered = render_slots(cfg.seed, np.repeat(slot_identity, 2), slot_var, _STREAM, workers)
    first, second = rendered[0::2], rendered[1::2]
    kinds = [COPY_KINDS[i % len(COPY_KINDS)] for i in range(len(leaked))]
    keys = plan.source_index[leaked]
    with RecordIOReader(train / synth_folder.REC_FILE, train / synth_folder.IDX_FILE) as reader:
        for i, (key, kind) in enumerate(zip(keys.tolist(), kinds)):
            first[len(shared) + i] = near_copy(unpack_image_record(reader.read(key))[1], kind)
    partner = _partners(np.random.default_rng([cfg.seed, 10]), n_slots)
    primary = plan.labels.primary
    is_train = slot_identity < cfg.identities
    slot_label = np.where(is_train, primary[np.minimum(slot_identity, cfg.identities - 1)], -1)
    copy_key = np.full(n_slots, -1, np.int64)
    copy_key[len(shared):len(shared) + len(leaked)] = keys
    copy_kind = [None] * len(shared) + kinds + [None] * len(disjoint)
    rows = {name: [] for name in TRUTH_SCHEMA.names}
    images: list[bytes] = []
    for k in range(n_slots):  # pair k: first image of slot k, second image of slot partner[k]
        for slot, data, kind in ((k, first[k], copy_kind[k]), (partner[k], second[partner[k]], None)):
            index = len(images)
            images.append(data)
            rows["eval_index"].append(index)
            rows["eval_path"].append(f"{IMAGES_DIR}/p{slot_identity[slot]:07d}/{index:06d}.jpg")
            rows["eval_identity"].append(int(slot_identity[slot]))
            rows["train_label"].append(int(slot_label[slot]) if slot_label[slot] >= 0 else None)
            rows["train_index"].append(int(copy_key[slot]) if kind is not None else None)
            rows["copy_kind"].append(kind)
    issame = slot_identity == slot_identity[partner]
    with staged_folder(out, overwrite, "evaluation set") as staging:
        save_bin(staging / EVAL_PACK, images, issame)
        for path, data in zip(rows["eval_path"], images):
            (staging / path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(staging / path, data)
        write_table(pa.table(rows, schema=TRUTH_SCHEMA), staging / TRUTH_FILE, TRUTH_SCHEMA,
                    metadata={"generator": "hardmine.synth", "version": GENERATOR_VERSION})
        info = _info(cfg, eval_cfg, train, rows, issame, staging)
        atomic_write_text(staging / INFO_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def _partners(rng: np.random.Generator, n_slots: int) -> np.ndarray:
    """``partner[k]``: the slot whose second image is paired with slot ``k``'s first image; a permutation
    that fixes a random half of the slots (genuine pairs) and rotates the rest (impostor pairs)."""
    partner = np.arange(n_slots)
    rotated = np.sort(rng.choice(n_slots, n_slots // 2 if n_slots // 2 >= 2 else 0, replace=False))
    partner[rotated] = np.roll(rotated, -1)
    return partner


def _check_train(cfg: SynthConfig, train: Path) -> None:
    info_path = synth_folder.info_path(train)
    if not info_path.is_file():
        raise DataError(train, "", "not a complete synthetic training set (no synth.json)")
    try:
        parameters = json.loads(info_path.read_text())["parameters"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(info_path, "", f"unreadable synth.json: {exc}") from None
    if parameters != asdict(cfg):
        raise DataError(info_path, "parameters", "the training set was made with other parameters "
                        f"({parameters}); an evaluation set is drawn from the same ones")


def _info(cfg: SynthConfig, eval_cfg: EvalSetConfig, train: Path, rows: dict, issame: np.ndarray,
          folder: Path) -> dict:
    labels = {v for v in rows["train_label"] if v is not None}
    kinds = [k for k in rows["copy_kind"] if k is not None]
    return {"generator": "hardmine.synth", "version": GENERATOR_VERSION, "parameters": asdict(cfg),
            "eval_set": asdict(eval_cfg), "train": os.fspath(train),
            "counts": {"images": len(rows["eval_index"]), "pairs": len(issame),
                       "genuine": int(issame.sum()), "identities": len(set(rows["eval_identity"])),
                       "shared_labels": len(labels),
                       "shared_images": sum(v is not None for v in rows["train_label"]),
                       "copies": {k: kinds.count(k) for k in COPY_KINDS}},
            "sha256": {name: file_sha256(folder / name) for name in (EVAL_PACK, TRUTH_FILE)}}
