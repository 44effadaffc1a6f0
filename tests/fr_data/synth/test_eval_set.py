"""Evaluation sets with planted overlap (fr_data.synth.eval_set): the truth table against the training set."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from fr_data.formats.recordio import RecordIOReader, unpack_image_record
from fr_data.formats.verification import load_bin
from fr_data.io.errors import DataError
from fr_data.io.parquet import read_table
from fr_data.synth import ATTRIBUTES_SCHEMA, SynthConfig, generate
from fr_data.synth.eval_set import TRUTH_SCHEMA, EvalSetConfig, generate_eval_set, near_copy

CFG = SynthConfig(identities=6, images_per_identity=4, seed=4, mislabel_rate=0.1, duplicate_rate=0.1,
                  split_identity_rate=0.2, holdout_identities=3, pairs=0)


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "synth"
    generate(CFG, out)
    with RecordIOReader(out / "train.rec", out / "train.idx") as reader:
        stored = {int(k): unpack_image_record(reader.read(int(k)))[1] for k in reader.keys if k >= 1}
    attributes = read_table(out / "attributes.parquet", ATTRIBUTES_SCHEMA).to_pandas().set_index("source_index")
    return out, {k: v for k, v in stored.items() if k in attributes.index}, attributes


def make(train, tmp_path, k: int, j: int, d: int):
    out = tmp_path / "EVAL"
    info = generate_eval_set(CFG, train[0], out, EvalSetConfig(k, j, d))
    truth = read_table(out / "truth.parquet", TRUTH_SCHEMA).to_pandas()
    return out, info, truth


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)


def test_planted_overlap_matches_the_training_set(train, tmp_path):
    _, stored, attributes = train
    out, info, truth = make(train, tmp_path, k=2, j=5, d=3)
    pack = load_bin(out / "overlap_eval.bin")
    assert len(truth) == len(pack.images) == 2 * (2 + 5 + 3)
    assert truth["eval_index"].tolist() == list(range(len(truth)))
    for row in truth.itertuples():  # the image folder holds the pack's images
        assert (out / row.eval_path).read_bytes() == pack.images[row.eval_index]
        assert row.eval_path.split("/")[1] == f"p{row.eval_identity:07d}"
    shared = truth[truth["train_label"].notna()]
    for row in shared.itertuples():  # the shared label is that person's one training class
        correct = attributes[~attributes["mislabeled"]]
        assert set(correct[correct["label"] == row.train_label]["true_identity"]) == {row.eval_identity}
        assert set(correct[correct["true_identity"] == row.eval_identity]["label"]) == {row.train_label}
    assert shared["eval_identity"].nunique() >= 2 and (truth["eval_identity"] >= 6 + 3).sum() == 6
    copies = truth[truth["copy_kind"].notna()]
    assert copies["copy_kind"].tolist() == ["exact", "reencoded", "resized", "cropped", "exact"]
    for row in copies.itertuples():
        original = stored[int(row.train_index)]
        assert attributes.loc[int(row.train_index), "label"] == row.train_label
        copy = pack.images[row.eval_index]
        if row.copy_kind == "exact":
            assert copy == original
        else:
            assert copy != original and np.abs(pixels(copy) - pixels(original)).mean() < 12
    fresh = truth[truth["copy_kind"].isna()]
    assert not {pack.images[i] for i in fresh["eval_index"]} & set(stored.values())  # new draws, not copies
    same = [truth["eval_identity"][2 * p] == truth["eval_identity"][2 * p + 1] for p in range(len(pack.issame))]
    assert list(pack.issame) == same and 0 < sum(same) < len(same)
    assert info["counts"]["copies"] == {"exact": 2, "reencoded": 1, "resized": 1, "cropped": 1}


def test_a_set_with_no_overlap_shares_nothing(train, tmp_path):
    stored = train[1]
    out, info, truth = make(train, tmp_path, k=0, j=0, d=4)
    assert truth["train_label"].isna().all() and truth["train_index"].isna().all()
    assert truth["copy_kind"].isna().all()
    assert (truth["eval_identity"] >= CFG.identities + CFG.holdout_identities).all()
    assert not set(load_bin(out / "overlap_eval.bin").images) & set(stored.values())
    assert info["counts"]["shared_labels"] == 0 and info["counts"]["shared_images"] == 0


def test_near_copies_differ_by_kind():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    original = buf.getvalue()
    assert near_copy(original, "exact") is original
    copies = {kind: near_copy(original, kind) for kind in ("reencoded", "resized", "cropped")}
    assert len(set(copies.values()) | {original}) == 4
    assert all(pixels(c).shape == (112, 112, 3) for c in copies.values())


def test_impossible_sizes_and_other_parameters_are_refused_and_nothing_is_published(train, tmp_path):
    with pytest.raises(ValueError, match="--overlap-identities 99"):
        generate_eval_set(CFG, train[0], tmp_path / "EVAL", EvalSetConfig(99, 0, 2))
    other = SynthConfig(**{**CFG.__dict__, "seed": 5})
    with pytest.raises(DataError, match="other parameters"):
        generate_eval_set(other, train[0], tmp_path / "EVAL", EvalSetConfig(1, 1, 2))
    assert not (tmp_path / "EVAL").exists() and not (tmp_path / ".EVAL.partial").exists()
    info = json.loads((train[0] / "synth.json").read_text())
    assert info["parameters"]["seed"] == CFG.seed
