"""Tests of the embedder (fr_data.embed.run and its parts): embeddings against an independent forward, manifest checks, merge, errors."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from torch import nn

from fr_data.embed.forward import embed_batch
from fr_data.embed.keys import KeyTable, read_manifest
from fr_data.embed.parts import merge_parts
from fr_data.embed.resolution import estimate_resolution_np
from fr_data.embed.run import embed_folder, embed_shards
from fr_data.folders.embeddings_folder import (
    EMBEDDINGS_FILE,
    EMBEDDINGS_INDEX_SCHEMA,
    INDEX_FILE,
    RUN_FILE,
    read_index,
)
from fr_data.io.errors import DataError
from fr_data.io.parquet import write_table
from fr_data.io.publish import staging_dir
from tests.fr_data.embed.helpers import EMB_DIM, jpeg, make_shards, make_tiny, write_shard


def reference(model: nn.Module, samples: list[tuple[str, int, bytes]]) -> dict[str, np.ndarray]:
    """Independent per-image computation: PIL decode, numpy normalisation, one forward per view."""
    feats, norms, coses, res = [], [], [], []
    for _, _, data in samples:
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)
        x = torch.from_numpy((pixels / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None]
        with torch.no_grad():
            f = model(x)[0].numpy().astype(np.float64)
            g = model(torch.flip(x, dims=[3]))[0].numpy().astype(np.float64)
        feats.append((f + g) / np.linalg.norm(f + g))
        norms.append(np.linalg.norm(f))
        coses.append(f @ g / (np.linalg.norm(f) * np.linalg.norm(g)))
        res.append(estimate_resolution_np(pixels))
    return {"emb": np.array(feats), "norm": np.array(norms), "flip_cos": np.array(coses),
            "res": np.array(res)}


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory) -> tuple[Path, list]:
    folder = tmp_path_factory.mktemp("shards")
    return folder, make_shards(folder)


@pytest.fixture(scope="module")
def embedded(shard_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("emb") / "EMB"
    embed_folder(make_tiny(), shard_dir[0], out, batch_size=5, progress=False, spec={"model": "tiny"})
    return out


# ------------------------------------------------------------------------------------------------ tests
def test_embeddings_match_independent_forward(shard_dir, embedded):
    samples = shard_dir[1]
    ref = reference(make_tiny(), samples)
    emb = np.load(embedded / EMBEDDINGS_FILE, mmap_mode="r")
    index = read_index(embedded)
    assert emb.dtype == np.float16 and emb.shape == (len(samples), EMB_DIM)
    assert index.column("key").to_pylist() == [k for k, _, _ in samples]
    assert index.column("label").to_pylist() == [lab for _, lab, _ in samples]
    np.testing.assert_allclose(emb.astype(np.float64), ref["emb"], atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(emb.astype(np.float64), axis=1), 1.0, atol=2e-3)
    np.testing.assert_allclose(index.column("norm").to_numpy(), ref["norm"], rtol=1e-4)
    np.testing.assert_allclose(index.column("flip_cos").to_numpy(), ref["flip_cos"], atol=1e-5)
    np.testing.assert_allclose(index.column("resolution").to_numpy(), ref["res"], atol=1e-6)
    assert index.column("flip_cos").to_numpy().max() < 0.9999  # the model is not mirror-symmetric


def test_run_json_records_hash_dims_count(embedded):
    info = json.loads((embedded / RUN_FILE).read_text())
    digest = hashlib.sha256((embedded / EMBEDDINGS_FILE).read_bytes()).hexdigest()
    assert info["sha256"] == digest
    assert (info["dims"], info["count"], info["spec"], info["flip"]) == (EMB_DIM, 12, {"model": "tiny"}, True)
    assert sorted(p.name for p in embedded.iterdir()) == sorted([EMBEDDINGS_FILE, INDEX_FILE, RUN_FILE])
    assert not staging_dir(embedded).exists()


def test_resolution_column_ranks_the_planted_downsampling(embedded):
    index = read_index(embedded)
    factor = np.array([(1, 2, 4)[int(k) % 3] for k in index.column("key").to_pylist()])
    res = index.column("resolution").to_numpy()
    assert res[factor == 1].min() > res[factor == 2].max() > 0
    assert res[factor == 2].min() > res[factor == 4].max()


def test_no_flip_stores_plain_embedding_and_null_flip_cos(shard_dir, tmp_path):
    folder, samples = shard_dir
    model = make_tiny()
    embed_folder(model, folder, tmp_path / "E", flip=False, batch_size=4, progress=False)
    emb = np.load(tmp_path / "E" / EMBEDDINGS_FILE).astype(np.float64)
    index = read_index(tmp_path / "E")
    assert index.column("flip_cos").null_count == len(samples)
    x = torch.stack([torch.from_numpy((np.asarray(Image.open(io.BytesIO(d)).convert("RGB"), np.float32)
                                       / 255 - 0.5) / 0.5).permute(2, 0, 1) for _, _, d in samples])
    with torch.no_grad():
        f = model(x).numpy()
    np.testing.assert_allclose(emb, f / np.linalg.norm(f, axis=1, keepdims=True), atol=2e-3)
    np.testing.assert_allclose(index.column("norm").to_numpy(), np.linalg.norm(f, axis=1), rtol=1e-4)


def test_scan_without_manifest_and_workers_give_the_same_files(shard_dir, embedded, tmp_path):
    folder, _ = shard_dir
    bare = tmp_path / "bare"
    bare.mkdir()
    for tar in folder.glob("shard-*.tar"):
        (bare / tar.name).write_bytes(tar.read_bytes())
    embed_folder(make_tiny(), bare, tmp_path / "scan", batch_size=5, progress=False)
    embed_folder(make_tiny(), folder, tmp_path / "workers", batch_size=3, workers=2, progress=False)
    ref = np.load(embedded / EMBEDDINGS_FILE)
    for name in ("scan", "workers"):
        np.testing.assert_allclose(np.load(tmp_path / name / EMBEDDINGS_FILE), ref, atol=1e-3)
        got, want = read_index(tmp_path / name), read_index(embedded)
        assert got.select(["key", "label"]).equals(want.select(["key", "label"]))
        for column in ("norm", "flip_cos", "resolution"):  # batch composition may change float rounding
            np.testing.assert_allclose(got.column(column).to_numpy(), want.column(column).to_numpy(),
                                       rtol=1e-5)


def test_existing_output_needs_overwrite(shard_dir, tmp_path):
    out = tmp_path / "E"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(DataError, match="overwrite"):
        embed_folder(make_tiny(), shard_dir[0], out, progress=False)
    embed_folder(make_tiny(), shard_dir[0], out, overwrite=True, progress=False)
    assert not (out / "old.txt").exists() and (out / RUN_FILE).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["E"]


def test_manifest_key_missing_from_shards(tmp_path):
    folder = tmp_path / "S"
    make_shards(folder, n=6, n_shards=2)
    table = pq.read_table(folder / "samples.parquet")
    extra = pa.table({"key": ["999999"], "label": [0], "shard": ["shard-000000.tar"]})
    pq.write_table(pa.concat_tables([table, extra]), folder / "samples.parquet")
    message = r"shard-000000\.tar \(member 999999\): missing: samples.parquet lists 4 samples"
    with pytest.raises(DataError, match=message):
        embed_folder(make_tiny(), folder, tmp_path / "E", progress=False)
    assert not (tmp_path / "E").exists()


def test_shard_key_missing_from_manifest(tmp_path):
    folder = tmp_path / "S"
    samples = make_shards(folder, n=6, n_shards=2)
    table = pq.read_table(folder / "samples.parquet")
    victim = samples[2][0]
    kept = table.filter(pa.compute.not_equal(table.column("key"), victim))
    pq.write_table(kept, folder / "samples.parquet")
    with pytest.raises(DataError, match=rf"shard-00000\d\.tar \(member {victim}\.cls\): sample '{victim}' is not listed"):
        embed_folder(make_tiny(), folder, tmp_path / "E", progress=False)


def test_label_differing_from_manifest(tmp_path):
    folder = tmp_path / "S"
    make_shards(folder, n=6, n_shards=2)
    table = pq.read_table(folder / "samples.parquet")
    labels = table.column("label").to_numpy().copy()
    labels[0] += 1
    pq.write_table(table.set_column(1, "label", pa.array(labels)), folder / "samples.parquet")
    key = table.column("key")[0].as_py()
    with pytest.raises(DataError, match=rf"\(key {key}\): label"):
        embed_folder(make_tiny(), folder, tmp_path / "E", progress=False)


def test_duplicate_key_across_shards_without_manifest(tmp_path):
    folder = tmp_path / "S"
    folder.mkdir()
    write_shard(folder / "shard-000000.tar", [("a", 0, jpeg(0))])
    write_shard(folder / "shard-000001.tar", [("a", 0, jpeg(1))])
    with pytest.raises(DataError, match=r"\(key a\): duplicate key"):
        embed_folder(make_tiny(), folder, tmp_path / "E", progress=False)


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_jpeg_names_shard_and_key(tmp_path, workers):
    folder = tmp_path / "S"
    make_shards(folder, n=6, n_shards=2, corrupt="000004")
    rows = pq.read_table(folder / "samples.parquet").to_pylist()
    shard = next(r["shard"] for r in rows if r["key"] == "000004")
    with pytest.raises(DataError, match=rf"{shard} \(key 000004\): cannot decode image"):
        embed_folder(make_tiny(), folder, tmp_path / "E", workers=workers, progress=False)
    assert not (tmp_path / "E").exists()


def test_sample_without_label_names_shard_and_key(tmp_path):
    folder = tmp_path / "S"
    folder.mkdir()
    with tarfile.open(folder / "shard-000000.tar", "w") as tar:
        info = tarfile.TarInfo("k1.jpg")
        data = jpeg(0)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match=r"^\S*shard-000000.tar \(key k1\): sample lacks an image or a .cls"):
        embed_folder(make_tiny(), folder, tmp_path / "E", progress=False)


def test_interrupted_run_leaves_no_final_names(shard_dir, tmp_path):
    calls = {"n": 0}

    class Dies(nn.Module):
        def forward(self, x):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            return make_tiny()(x)

    with pytest.raises(KeyboardInterrupt):
        embed_folder(Dies(), shard_dir[0], tmp_path / "E", batch_size=4, progress=False)
    assert not (tmp_path / "E").exists()
    staged = staging_dir(tmp_path / "E")
    assert not (staged / EMBEDDINGS_FILE).exists()  # the memmap only ever had a temporary name
    embed_folder(make_tiny(), shard_dir[0], tmp_path / "E", progress=False)  # a rerun clears the stale stage
    assert (tmp_path / "E" / RUN_FILE).exists() and not staged.exists()


def test_embed_batch_flip_sum_and_tuple_outputs():
    class Pair(nn.Module):  # returns (features, extra) like AdaFace-style backbones
        def forward(self, x):
            return x.mean(dim=(2, 3)) * torch.tensor([1.0, 2.0, 3.0]) + x[:, :, 0, :2].sum(-1), None

    x = torch.randn(4, 3, 8, 8)
    out = embed_batch(Pair(), x, flip=True)
    f, g = Pair()(x)[0], Pair()(x.flip(-1))[0]
    torch.testing.assert_close(out.features, torch.nn.functional.normalize(f + g))
    torch.testing.assert_close(out.norm, f.norm(dim=1))
    torch.testing.assert_close(out.flip_cos, torch.nn.functional.cosine_similarity(f, g))


def test_zero_feature_is_an_error(shard_dir, tmp_path):
    class Zero(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 4)

    with pytest.raises(DataError, match="zero or non-finite feature"):
        embed_folder(Zero(), shard_dir[0], tmp_path / "E", progress=False)


# ---------------------------------------------------------------------------------------------- merging
def _write_part(parts: Path, rank: int, keys: list[str], rows: np.ndarray) -> None:
    n = len(keys)
    table = pa.table({"key": keys, "label": list(range(n)), "norm": np.full(n, rank + 1.0, np.float32),
                      "flip_cos": pa.nulls(n, pa.float32()), "resolution": np.full(n, 0.5, np.float32)})
    write_table(table, parts / f"rank-{rank}.parquet", EMBEDDINGS_INDEX_SCHEMA)
    if n:
        np.save(parts / f"rank-{rank}.npy", rows.astype(np.float16))


def test_merge_two_fake_parts_in_key_order(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    rows = np.arange(7 * 3, dtype=np.float16).reshape(7, 3)  # row i belongs to key f"k{i}"
    _write_part(parts, 0, ["k0", "k3", "k4", "k6"], rows[[0, 3, 4, 6]])
    _write_part(parts, 1, ["k1", "k2", "k5"], rows[[1, 2, 5]])
    _write_part(parts, 2, [], rows[:0])  # a rank without shards
    expected = KeyTable.build([f"k{i}" for i in range(7)], [0] * 7, tmp_path / "samples.parquet")
    index = merge_parts(parts, tmp_path / "merged.npy", expected, chunk_rows=3)
    np.testing.assert_array_equal(np.load(tmp_path / "merged.npy"), rows)
    assert index.column("key").to_pylist() == [f"k{i}" for i in range(7)]
    assert index.column("norm").to_pylist() == [1, 2, 2, 1, 1, 2, 1]


def test_merge_rejects_duplicates_and_missing_keys(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    rows = np.ones((2, 3))
    _write_part(parts, 0, ["a", "b"], rows)
    _write_part(parts, 1, ["b", "c"], rows)
    with pytest.raises(DataError, match=r"rank-1.parquet \(key b\): key embedded by two ranks"):
        merge_parts(parts, tmp_path / "m.npy")
    _write_part(parts, 1, ["c", "d"], rows)
    expected = KeyTable.build(["a", "b", "c", "e"], [0] * 4, tmp_path / "samples.parquet")
    with pytest.raises(DataError, match=r"missing e.g. \['e'\], not listed e.g. \['d'\]"):
        merge_parts(parts, tmp_path / "m.npy", expected)
    assert not (tmp_path / "m.npy").exists()


def test_read_manifest_filters_by_shard(shard_dir):
    folder, samples = shard_dir
    table = pq.read_table(folder / "samples.parquet")
    keys = read_manifest(folder / "samples.parquet", {"shard-000001.tar"})
    wanted = sorted(k for k, s in zip(table.column("key").to_pylist(), table.column("shard").to_pylist())
                    if s == "shard-000001.tar")
    assert [k.decode() for k in keys.keys] == wanted
    assert len(read_manifest(folder / "samples.parquet")) == len(samples)


def test_embed_shards_takes_an_explicit_shard_list(shard_dir, embedded, tmp_path):
    folder, _ = shard_dir
    shards = sorted(folder.glob("shard-*.tar"))
    embed_shards(make_tiny(), shards, tmp_path / "E", manifest=folder / "samples.parquet", progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "E" / EMBEDDINGS_FILE),
                                  np.load(embedded / EMBEDDINGS_FILE))
