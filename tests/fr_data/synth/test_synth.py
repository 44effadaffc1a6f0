"""Tests of the synthetic face generator: appearance priors, 3-D projection, degradations, defects,
output files and determinism."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

from fr_data.formats.recordio import RecordIOReader, unpack_image_record
from fr_data.formats.verification import decode_pack, load_bin
from fr_data.ingest.recordio_source import RecordIOSource
from fr_data.io.parquet import read_table
from fr_data.synth import (ATTRIBUTES_SCHEMA, GROUPS, PACKS, SynthConfig, generate, generate_packs, plan_train,
                           sample_identity)
from fr_data.synth.defects import near_duplicate, plan_labels
from fr_data.synth.identity import identity_group
from fr_data.synth.render import IMAGE_SIZE, cast_surface, prepare_texture, render
from fr_data.synth.texture import build_texture
from fr_data.synth.variation import (
    FRONTAL_PRIOR,
    TRAIN_PRIOR,
    Variations,
    degrade,
    encode_jpeg,
    resolution_loss,
    sample_variations,
)

TINY = SynthConfig(identities=6, images_per_identity=5, seed=3, mislabel_rate=0.1, duplicate_rate=0.2,
                   cross_duplicate_share=0.5, split_identity_rate=0.34, holdout_identities=4, pairs=6)


def _posed(n: int, yaw: list[float]) -> Variations:
    var = sample_variations(np.random.default_rng(0), n, FRONTAL_PRIOR)
    return dataclasses.replace(var, yaw=np.asarray(yaw, float), roll=np.zeros(n), shift=np.zeros((n, 2)),
                               face_scale=np.ones(n))


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    info = generate(TINY, out, workers=1)
    return out, info


def test_identity_is_deterministic_and_groups_have_different_priors():
    a, b = sample_identity(7, 11), sample_identity(7, 11)
    assert a.eye_theta == b.eye_theta and np.array_equal(a.texture_modes, b.texture_modes)
    assert sample_identity(8, 11).eye_theta != a.eye_theta
    assert identity_group(7, 11) == a.group
    lum = {g: np.mean([sample_identity(0, i, group=g).skin.mean() for i in range(40)]) for g in range(4)}
    assert lum[0] > lum[1] > lum[2] > lum[3]  # the skin-tone priors are ordered light to dark
    assert len(GROUPS) == 4


def test_far_side_foreshortens_and_disappears_with_yaw():
    ident = sample_identity(0, 3)
    surf = cast_surface(ident, _posed(4, [0, 30, 60, 90]))
    far = [(surf.theta[i][surf.face[i]] > ident.eye_theta).sum() for i in range(4)]
    near = [(surf.theta[i][surf.face[i]] < -ident.eye_theta).sum() for i in range(4)]
    assert far[0] == pytest.approx(near[0], rel=0.05)  # frontal: symmetric
    assert far[0] > far[1] > far[2] and far[2] < 0.02 * far[0]  # the far side foreshortens...
    assert far[3] == 0  # ...and disappears
    assert near[1] > near[0]
    assert surf.theta[3][surf.face[3]].max() < 0.05  # profile: nothing of the far half is visible


def test_render_shapes_and_frontal_mirror_symmetry():
    ident = sample_identity(0, 5)
    texture = prepare_texture(build_texture(ident))
    var = _posed(2, [0, 0])
    var = dataclasses.replace(var, light=np.tile([0.0, 0.0, 1.0], (2, 1)), bg_gradient=np.zeros(2))
    img = render(ident, texture, var)
    assert img.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3) and img.dtype == np.float32
    face = cast_surface(ident, var).face[0]
    assert np.mean(face == face[:, ::-1]) > 0.99  # silhouette symmetric at yaw 0
    yawed = render(ident, texture, _posed(1, [60]))
    assert np.abs(yawed[0] - img[0]).mean() > 10


def test_pose_and_resolution_shares_of_the_training_prior():
    var = sample_variations(np.random.default_rng(1), 20_000, TRAIN_PRIOR)
    assert 0.07 <= np.mean(np.abs(var.yaw) >= 60) <= 0.09
    assert np.abs(var.yaw).max() <= 90
    assert 0.09 <= np.mean(var.downsample >= 4) <= 0.11
    truly_hard = (np.abs(var.yaw) >= 60) | (var.downsample >= 4)
    assert 0.15 <= np.mean(truly_hard) <= 0.19  # a hard split of 10% can reach 3x the base rate
    assert set(np.unique(var.downsample)) == {1, 2, 4, 8}


def test_resolution_loss_removes_detail_but_keeps_flat_regions():
    rng = np.random.default_rng(0)
    flat = np.full((1, 112, 112, 3), 80.0, np.float32)
    assert np.allclose(resolution_loss(flat, 8), 80.0)
    checker = (np.indices((112, 112)).sum(0) % 2 * 255.0).astype(np.float32)[None, :, :, None].repeat(3, 3)
    assert np.allclose(resolution_loss(checker, 2), 127.5)  # 2x2 blocks average out completely
    noise = rng.uniform(0, 255, (1, 112, 112, 3)).astype(np.float32)
    energy = [np.std(resolution_loss(noise.copy(), f)) for f in (1, 2, 4, 8)]
    assert energy[0] > energy[1] > energy[2] > energy[3]
    assert resolution_loss(noise, 1) is noise


def test_degrade_encodes_decodable_jpegs_of_the_requested_quality():
    var = sample_variations(np.random.default_rng(2), 3, TRAIN_PRIOR)
    images = np.full((3, 112, 112, 3), 120, np.float32)
    out = degrade(images, var, np.random.default_rng(0))
    assert len(out) == 3 and all(b[:3] == b"\xff\xd8\xff" for b in out)
    assert Image.open(io.BytesIO(out[0])).size == (112, 112)


def test_near_duplicate_is_close_but_not_identical():
    pixels = np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    src = encode_jpeg(pixels, 90)
    dup, quality = near_duplicate(src, 90, np.random.default_rng(1))
    assert dup != src and 82 <= quality <= 98
    a = np.asarray(Image.open(io.BytesIO(src)), np.float32)
    b = np.asarray(Image.open(io.BytesIO(dup)), np.float32)
    assert np.abs(a - b).mean() < 12  # same image up to re-encoding noise


def test_label_plan_is_a_permutation_with_split_labels():
    plan = plan_labels(np.random.default_rng(0), 10, 0.3)
    assert plan.num_classes == 13
    assert sorted(np.concatenate([plan.primary, plan.secondary[plan.secondary >= 0]])) == list(range(13))
    split = np.flatnonzero(plan.secondary >= 0)
    assert len(split) == 3
    assert np.array_equal(plan.label_identity[plan.secondary[split]], split)
    assert np.array_equal(plan.label_identity[plan.primary], np.arange(10))


def test_train_plan_defect_counts_and_ground_truth():
    cfg = SynthConfig(identities=40, images_per_identity=10, seed=1, mislabel_rate=0.05, duplicate_rate=0.05,
                      cross_duplicate_share=0.4, split_identity_rate=0.1, pairs=0)
    plan = plan_train(cfg)
    base = plan.duplicate_src < 0
    assert base.sum() == 400 and (~base).sum() == 20
    wrong = plan.labels.label_identity[plan.label] != plan.identity
    cross = ~base & (plan.identity != plan.labels.label_identity[plan.label])
    assert (wrong & base).sum() == 20  # 5% of base images mislabelled
    assert 0 < cross.sum() < 20
    dup_rows = np.flatnonzero(~base)
    assert np.array_equal(plan.identity[dup_rows], plan.identity[plan.duplicate_src[dup_rows]])
    assert np.array_equal(plan.variations.yaw[dup_rows], plan.variations.yaw[plan.duplicate_src[dup_rows]])
    split_rows = plan.split_from >= 0
    assert split_rows.any() and not wrong[split_rows].any()  # split images keep their true identity
    assert np.array_equal(plan.split_from[split_rows], plan.labels.primary[plan.identity[split_rows]])
    assert np.all(np.diff(plan.label[plan.order]) >= 0)  # records grouped by ascending label
    assert sorted(plan.source_index) == list(range(1, 421))


def test_generate_writes_consistent_insightface_layout(tiny_set):
    out, info = tiny_set
    table = read_table(out / "attributes.parquet", ATTRIBUTES_SCHEMA)
    rows = table.to_pydict()
    n = info["counts"]["num_images"]
    assert table.num_rows == n == TINY.identities * TINY.images_per_identity + info["counts"]["near_duplicates"]
    source = RecordIOSource(out)
    assert len(source) == n and source.num_classes == info["counts"]["num_classes"]
    with RecordIOReader(out / "train.rec", out / "train.idx") as reader:
        for key, label in zip(rows["source_index"], rows["label"]):
            header, jpeg = unpack_image_record(reader.read(key))
            assert int(header.label) == label
            assert Image.open(io.BytesIO(jpeg)).size == (112, 112)
    assert (out / "property").read_text().strip() == f"{info['counts']['num_classes']},112,112"
    by_key = dict(zip(rows["source_index"], range(n)))
    for i, dup in enumerate(rows["duplicate_of"]):
        if dup is not None:
            assert rows["true_identity"][by_key[dup]] == rows["true_identity"][i]
    mislabeled = np.array(rows["mislabeled"])
    assert np.array_equal(mislabeled, np.array(rows["label_identity"]) != np.array(rows["true_identity"]))
    assert mislabeled.sum() == info["counts"]["mislabeled"] > 0
    assert set(np.unique(rows["scale"])) <= {1.0, 0.5, 0.25, 0.125}


def test_generate_writes_verification_packs_from_held_out_identities(tiny_set):
    out, info = tiny_set
    for spec in PACKS:
        pack = load_bin(out / f"{spec.name}.bin")
        assert len(pack) == TINY.pairs and pack.issame.sum() == TINY.pairs // 2
        assert decode_pack(pack).shape == (2 * TINY.pairs, 3, 112, 112)
        assert info["packs"][spec.name]["genuine"] == TINY.pairs // 2
    assert info["packs"]["synth_pose"]["second_abs_yaw"][0] >= 60
    assert set(info["packs"]["synth_lowres"]["second_downsample"]) <= {4, 8}
    assert info["packs"]["synth_easy"]["second_downsample"] == [1]
    table = read_table(out / "attributes.parquet", ATTRIBUTES_SCHEMA)
    assert max(table.column("true_identity").to_pylist()) < TINY.identities  # held-out ones never in train
    meta = json.loads((out / "synth.json").read_text())
    assert meta["parameters"]["seed"] == TINY.seed and meta["counts"] == info["counts"]


def test_output_is_byte_identical_for_a_seed_whatever_the_workers(tiny_set, tmp_path):
    out, _ = tiny_set
    generate(TINY, tmp_path / "w2", workers=2)
    for name in ("train.rec", "train.idx", "property", "attributes.parquet", "synth_easy.bin",
                 "synth_pose.bin", "synth_lowres.bin", "synth.json"):
        assert (out / name).read_bytes() == (tmp_path / "w2" / name).read_bytes(), name
    other = dataclasses.replace(TINY, seed=4, pairs=0)
    generate(other, tmp_path / "s4", workers=1)
    assert (tmp_path / "s4" / "train.rec").read_bytes() != (out / "train.rec").read_bytes()


def test_generate_packs_writes_the_same_packs_without_a_training_set(tiny_set, tmp_path):
    out, _ = tiny_set
    info = generate_packs(TINY, tmp_path / "packs", workers=1)
    for spec in PACKS:
        assert (tmp_path / "packs" / f"{spec.name}.bin").read_bytes() == (out / f"{spec.name}.bin").read_bytes()
    assert not (tmp_path / "packs" / "train.rec").exists()
    assert json.loads((tmp_path / "packs" / "packs.json").read_text())["sha256"] == info["sha256"]
    other = generate_packs(dataclasses.replace(TINY, seed=TINY.seed + 1), tmp_path / "other", workers=1)
    assert other["sha256"]["synth_easy.bin"] != info["sha256"]["synth_easy.bin"]  # other people
    with pytest.raises(ValueError, match="pairs"):
        generate_packs(dataclasses.replace(TINY, pairs=0), tmp_path / "none")


def test_config_rejects_bad_rates():
    with pytest.raises(ValueError, match="mislabel_rate"):
        SynthConfig(identities=2, images_per_identity=2, mislabel_rate=1.5)
    with pytest.raises(ValueError, match="held-out"):
        SynthConfig(identities=2, images_per_identity=2, holdout_identities=1, pairs=4)


def test_sensor_noise_belongs_to_the_low_resolution_capture():
    var = sample_variations(np.random.default_rng(3), 2, TRAIN_PRIOR)
    var = dataclasses.replace(var, downsample=np.array([1, 8]), noise=np.array([6.0, 6.0]),
                              jpeg_quality=np.array([95, 95]))
    out = degrade(np.full((2, 112, 112, 3), 120, np.float32), var, np.random.default_rng(0))
    pixels = [np.asarray(Image.open(io.BytesIO(b)).convert("L"), np.float32) for b in out]
    # noise added at full resolution keeps pixel-to-pixel jumps; noise of an 14x14 capture upsampled
    # bilinearly changes by at most 1/8 of a capture step between neighbouring pixels
    jumps = [np.abs(np.diff(p, axis=1)).mean() for p in pixels]
    assert jumps[0] > 3.0 and jumps[1] < 1.0
    assert abs(pixels[1].mean() - 120) < 2 and pixels[1].std() > 1.0  # the noise is there, only smooth
