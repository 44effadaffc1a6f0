"""Tests of fr_data.loading.loader: decoding math, flips, ordered reading, equal batches per rank, splitting."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fr_data.folders.shard_folder import list_shards, read_samples
from fr_data.formats.tario import TarWriter
from fr_data.ingest.plan import ShardOptions
from fr_data.ingest.sharding import write_shards
from fr_data.io.errors import ConfigError, DataError
from fr_data.loading.decode import decode_face, flip_face, normalize_faces
from fr_data.loading.loader import (
    ShardStream,
    batches_per_rank,
    iter_samples,
    make_train_loader,
    segments,
    shard_counts,
)
from tests.fr_data.ingest.helpers import FakeSource


def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def pattern(height: int = 112, width: int = 112) -> np.ndarray:
    """An asymmetric RGB test card: distinct values per channel, row and column."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(2 * x) % 256, (3 * y) % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def write_tar_shards(folder: Path, counts: list[int], size: int = 8) -> dict[str, bytes]:
    """Shards ``s-00000i.tar`` with the given sample counts; keys k<shard><pos>, label = shard index."""
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for shard, count in enumerate(counts):
        with open(folder / f"s-{shard:06d}.tar", "wb") as stream:
            writer = TarWriter(stream)
            for pos in range(count):
                key = f"k{shard:02d}{pos:03d}"
                images[key] = encode(((pattern(size, size).astype(int) + shard * 20 + pos) % 256).astype(np.uint8))
                writer.add(f"{key}.cls", str(shard).encode())
                writer.add(f"{key}.jpg", images[key])
            writer.finish()
    return images


# ------------------------------------------------------------------------------------------- decoding
def test_decode_face_matches_numpy_math():
    pixels = pattern()
    tensor = decode_face(encode(pixels))
    expected = (pixels.astype(np.float64) / 255.0 - 0.5) / 0.5
    assert tensor.shape == (3, 112, 112) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), expected.transpose(2, 0, 1), atol=1e-6)
    assert tensor.min().item() >= -1.0 and tensor.max().item() <= 1.0


def test_decode_face_grayscale_and_resize():
    gray = (np.arange(56 * 56).reshape(56, 56) % 256).astype(np.uint8)
    tensor = decode_face(encode(gray))
    reference = np.asarray(Image.fromarray(gray).convert("RGB").resize((112, 112), Image.BILINEAR))
    np.testing.assert_allclose(tensor.numpy(), (reference.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5, atol=1e-6)
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[1], tensor[2])


def test_decode_face_jpeg_uses_decoded_pixels():
    data = encode(pattern(), fmt="JPEG")
    reference = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
    np.testing.assert_allclose(decode_face(data).numpy(), (reference.transpose(2, 0, 1) / 255 - 0.5) / 0.5,
                               atol=1e-6)


def test_flip_face_mirrors_columns():
    tensor = decode_face(encode(pattern()))
    np.testing.assert_array_equal(flip_face(tensor).numpy(), tensor.numpy()[:, :, ::-1])


# ------------------------------------------------------------------------------------- plain reading
@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "out"
    source = FakeSource(n=24, per_class=6)
    write_shards(source, out, ShardOptions(per_shard=6, seed=1))
    return out, source


def test_iter_samples_follows_manifest_order(sharded):
    out, source = sharded
    shards = list_shards(out)
    assert [p.name for p in shards] == [f"shard-{i:06d}.tar" for i in range(4)]
    samples = list(iter_samples(shards))
    manifest = read_samples(out).to_pylist()
    assert [s["key"] for s in samples] == [r["key"] for r in manifest]
    for sample, row in zip(samples, manifest):
        assert sample["label"] == row["label"] and sample["jpg"] == source.image(row["source_index"])
    assert shard_counts(shards) == [6, 6, 6, 6]


def test_list_shards_refuses_unfinished_and_globs_foreign(tmp_path):
    (tmp_path / "plan.json").write_text("{}")
    with pytest.raises(DataError, match="did not finish"):
        list_shards(tmp_path)
    write_tar_shards(tmp_path / "foreign", [3, 2])
    shards = list_shards(tmp_path / "foreign")
    assert [p.name for p in shards] == ["s-000000.tar", "s-000001.tar"]
    assert shard_counts(shards) == [3, 2]  # counted: no shards.json there
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no shard"):
        list_shards(tmp_path / "empty")


# ------------------------------------------------------------------------------- epochs and splitting
COUNTS = [7, 5, 9, 3, 6]  # five shards of unequal size, 30 samples


def rank_keys(folder: Path, world: int, rank: int, workers: int, batch: int, **kw) -> list[list[str]]:
    """Per simulated DataLoader worker of one rank, the keys it yields."""
    stream = ShardStream(list_shards(folder), batch, rank=rank, world_size=world, return_keys=True, **kw)
    out = []
    for worker in range(workers):
        keys = []
        for images, labels, batch_keys in stream.iter_worker(worker, workers):
            assert images.shape == (batch, 3, 112, 112) and labels.shape == (batch,)
            keys.extend(batch_keys)
        assert len(keys) == stream.worker_segments(worker, workers)[1] * batch
        out.append(keys)
    return out


@pytest.mark.parametrize("world", [2, 3])
def test_equal_batches_per_rank_and_no_duplicates(tmp_path, world):
    write_tar_shards(tmp_path, COUNTS)
    batch, workers = 4, 2
    expected = batches_per_rank(30, world, batch)
    assert expected == 30 // (world * batch)
    all_keys = []
    for rank in range(world):
        per_worker = rank_keys(tmp_path, world, rank, workers, batch, buffer=5)
        assert sum(len(k) for k in per_worker) == expected * batch
        all_keys += [k for keys in per_worker for k in keys]
    assert len(all_keys) == len(set(all_keys)) == expected * batch * world


def test_labels_match_keys_and_epochs_differ(tmp_path):
    write_tar_shards(tmp_path, COUNTS)
    stream = ShardStream(list_shards(tmp_path), 5, rank=0, world_size=1, return_keys=True, seed=3)
    first = [k for _, labels, keys in stream for k in keys]
    for _, labels, keys in stream:
        assert [int(k[1:3]) for k in keys] == labels.tolist()
    assert [k for _, _, keys in stream for k in keys] == first  # same epoch, same order
    stream.set_epoch(1)
    second = [k for _, _, keys in stream for k in keys]
    assert second != first and sorted(second) == sorted(first)


def test_epoch_length_longer_than_data_repeats_evenly(tmp_path):
    write_tar_shards(tmp_path, COUNTS)
    stream = ShardStream(list_shards(tmp_path), 5, rank=1, world_size=2, epoch_samples=60, return_keys=True)
    assert len(stream) == 6
    keys = [k for _, _, batch in stream for k in batch]
    assert len(keys) == 30 and len(set(keys)) == 30  # rank 1 gets the second pass over all 30 samples
    short = ShardStream(list_shards(tmp_path), 5, rank=0, world_size=2, epoch_samples=12)
    assert len(short) == 1 and len(list(short)) == 1
    with pytest.raises(ConfigError, match="no full batch"):
        ShardStream(list_shards(tmp_path), 16, rank=0, world_size=2)


def test_segments_cover_cyclically():
    segs = segments([3, 0, 4], [2, 0, 1], start=2, length=7)
    assert [(s.shard, s.start, s.stop) for s in segs] == [(2, 2, 4), (0, 0, 3), (2, 0, 2)]


def test_real_dataloader_workers_and_seeded_flip(tmp_path):
    images = write_tar_shards(tmp_path, [4, 4, 4, 4], size=112)
    loader = make_train_loader(tmp_path, 4, num_workers=2, rank=0, world_size=1, flip=True, seed=7,
                               return_keys=True, buffer=0)
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    keys = [k for _, _, batch in batches for k in batch]
    assert sorted(keys) == sorted(images)
    flips = Counter()
    for imgs, _, batch_keys in batches:
        for img, key in zip(imgs, batch_keys):
            plain = decode_face(images[key])
            flipped = torch.equal(img, flip_face(plain))
            assert flipped or torch.equal(img, plain)
            flips[flipped] += 1
    assert flips[True] > 0 and flips[False] > 0
    again = [imgs for imgs, _, _ in make_train_loader(tmp_path, 4, num_workers=2, rank=0, world_size=1,
                                                      flip=True, seed=7, return_keys=True, buffer=0)]
    assert all(torch.equal(a, b[0]) for a, b in zip(again, batches))


def test_corrupt_image_in_shard_names_shard_and_key(tmp_path):
    with open(tmp_path / "bad-000000.tar", "wb") as stream:
        writer = TarWriter(stream)
        writer.add("k1.cls", b"0")
        writer.add("k1.jpg", b"\xff\xd8\xff garbage")
        writer.finish()
    stream = ShardStream(list_shards(tmp_path), 1, rank=0, world_size=1)
    with pytest.raises(DataError, match=r"bad-000000\.tar \(key k1\): image does not decode"):
        list(stream)


def test_shard_shorter_than_its_count_is_an_error(tmp_path):
    write_tar_shards(tmp_path, [3, 3])
    stream = ShardStream(list_shards(tmp_path), 2, counts=[3, 5], rank=0, world_size=1, shuffle=False)
    with pytest.raises(DataError, match=r"s-000001\.tar \(sample 3\): shard ends early"):
        list(stream)


def test_uint8_batches_normalize_to_the_float_batches(tmp_path):
    write_tar_shards(tmp_path, [4, 4], size=112)
    kw = dict(rank=0, world_size=1, flip=True, seed=5, buffer=3)
    floats = list(ShardStream(list_shards(tmp_path), 4, **kw))
    raw = list(ShardStream(list_shards(tmp_path), 4, normalize=False, **kw))
    assert raw[0][0].dtype == torch.uint8 and len(raw) == len(floats) == 2
    for (f_images, f_labels), (u_images, u_labels) in zip(floats, raw):
        assert torch.equal(f_labels, u_labels)
        torch.testing.assert_close(normalize_faces(u_images), f_images, atol=1e-6, rtol=0)

