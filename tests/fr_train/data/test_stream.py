"""The selected stream: equal batch counts per rank, no duplicates, selected labels, DataLoader workers."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from fr_data.folders.shard_folder import list_shards
from fr_data.formats.tario import group_members
from fr_data.io.config import from_dict
from fr_data.io.errors import ConfigError
from fr_data.loading.decode import decode_face
from fr_data.loading.loader import shard_order
from fr_data.loading.shard_index import ShardIndex
from fr_train.data import (
    AugmentConfig,
    ComposerConfig,
    DataConfig,
    ImageBatch,
    SelectionConfig,
    build_train_data,
)
from fr_train.data.config import validate_data_config
from fr_train.data.reader import ImageReader
from fr_train.data.selection import resolve_selection
from fr_train.data.stream import SelectedStream
from tests.fr_train.data.builders import make_tiny_data, tiny_data_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("stream"), per_shard=5)  # 8 shards of 4-5 samples


@pytest.fixture(scope="module")
def reader(data):
    # uneven selected counts per shard: easy+medium without suspects and duplicates = 21 samples
    cfg = SelectionConfig(splits=["easy", "medium"], drop_suspects=True, drop_duplicates=True)
    selection = resolve_selection(cfg, data.shards, data.run)
    return ImageReader(selection, ShardIndex.open(data.shards))


def rank_batches(reader, world: int, workers: int, batch: int, **kw) -> list[list[ImageBatch]]:
    """Every rank's batches, gathering its simulated workers' outputs."""
    out = []
    for rank in range(world):
        stream = SelectedStream(reader, batch, rank=rank, world_size=world, **kw)
        out.append([b for w in range(workers) for b in stream.iter_worker(w, workers)])
    return out


def test_selected_counts_per_shard_are_uneven(reader):
    stream = SelectedStream(reader, 2)
    assert sum(stream.counts) == 21 and len(set(stream.counts)) > 1


@pytest.mark.parametrize("world,workers,batch", [(2, 1, 3), (3, 2, 2), (3, 3, 1)])
def test_every_rank_gets_the_same_batch_count_and_no_key_twice(reader, world, workers, batch):
    per_rank = rank_batches(reader, world, workers, batch, seed=4)
    expected = 21 // (world * batch)
    assert [len(b) for b in per_rank] == [expected] * world
    assert all(len(SelectedStream(reader, batch, rank=r, world_size=world)) == expected for r in range(world))
    keys = [k for batches in per_rank for b in batches for k in b.keys]
    assert len(keys) == len(set(keys)) == expected * world * batch  # at most world*batch-1 left out
    assert set(keys) <= set(reader.selection.keys)


def test_labels_are_the_selection_labels_and_images_decode_the_stored_bytes(reader):
    stream = SelectedStream(reader, 4, shuffle=False)
    batch = next(iter(stream))
    assert batch.labels.dtype == torch.int64 and batch.images.shape == (4, 3, 112, 112)
    assert batch.labels.tolist() == [reader.selection.label_of(k) for k in batch.keys]
    for image, key in zip(batch.images, batch.keys):
        assert torch.equal(image, decode_face(reader.index.read_image(key)))


def test_epochs_reshuffle_the_same_samples(reader):
    stream = SelectedStream(reader, 3, seed=1)
    epochs = []
    for epoch in range(2):
        stream.set_epoch(epoch)
        epochs.append([k for b in stream for k in b.keys])
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])
    stream.set_epoch(0)
    assert [k for b in stream for k in b.keys] == epochs[0]  # reproducible


def test_epoch_samples_sets_the_epoch_length(reader):
    longer = rank_batches(reader, 2, 1, 3, epoch_samples=60)
    assert [len(b) for b in longer] == [10, 10]
    counts = Counter(k for batches in longer for b in batches for k in b.keys)
    assert set(counts) == set(reader.selection.keys) and max(counts.values()) - min(counts.values()) <= 1
    with pytest.raises(ConfigError, match="no full batch"):
        SelectedStream(reader, 8, world_size=3)


def test_batches_do_not_depend_on_the_dataloader_worker_count(data):
    cfg = tiny_data_config(data, batch_size=3, buffer=7, augment=AugmentConfig(flip_p=0.5, lowres_p=0.5),
                           composer=ComposerConfig(enabled=True, identities=3, pairs=2))
    one = list(build_train_data(cfg, rank=1, world_size=2))
    cfg.num_workers = 2
    two = build_train_data(cfg, rank=1, world_size=2)
    assert len(two) == two.batches_per_epoch == 6
    for a, b in zip(one, two, strict=True):
        assert a.keys == b.keys and torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert a.branches[1].pos_keys == b.branches[1].pos_keys
        assert torch.equal(a.branches[0].neg_images, b.branches[0].neg_images)


def test_resuming_mid_epoch_gives_the_remaining_batches_exactly(data):
    cfg = tiny_data_config(data, batch_size=2, buffer=6, num_workers=2, augment=AugmentConfig(lowres_p=0.5),
                           composer=ComposerConfig(enabled=True, identities=2, pairs=2))
    train = build_train_data(cfg, rank=0, world_size=2)
    train.set_epoch(5)
    full = list(train)
    train.set_epoch(5, start_step=4)
    assert len(train) == train.batches_per_epoch - 4 == 5
    resumed = list(train)
    for a, b in zip(full[4:], resumed, strict=True):
        assert a.keys == b.keys and torch.equal(a.images, b.images)
        assert a.branches[1].neg_keys == b.branches[1].neg_keys


def test_shuffle_windows_permute_within_neighbouring_samples(data, reader):
    stream = SelectedStream(reader, 2, buffer=6, seed=2)
    stream.set_epoch(1)
    got = [k for b in stream for k in b.keys]
    # independent reference: the selected keys of each shard in tar order, shards in the epoch's order
    selected = set(reader.selection.keys)
    shards = list_shards(data.shards)
    sequence = [key for s in shard_order(len(shards), 2, 1) for key, _ in group_members(shards[s])
                if key in selected][:20]  # 10 batches of 2: the 21st sample is left out
    assert stream.window == 3 and len(got) == 20
    assert got != sequence  # shuffled ...
    for w in range(0, 20, 6):  # ... but only within windows of 3 batches
        assert sorted(got[w:w + 6]) == sorted(sequence[w:w + 6])


def test_build_train_data_end_to_end(data):
    cfg = tiny_data_config(data, batch_size=4, num_workers=2, selection=SelectionConfig(merge_classes=True))
    train = build_train_data(cfg, rank=0, world_size=2)
    assert train.num_classes == 5 and train.batches_per_epoch == 4
    train.set_epoch(3)
    batches = list(train)
    assert len(batches) == 4 and all(b.branches is None for b in batches)
    assert all(int(b.labels.max()) < train.num_classes for b in batches)
    moved = batches[0].to("cpu")
    assert torch.equal(moved.images, batches[0].images) and moved.keys == batches[0].keys


def test_data_config_from_yaml_dict_rejects_unknown_keys():
    cfg = from_dict(DataConfig, {"shards": "s", "selection": {"splits": ["easy"], "drop_suspects": True},
                                 "composer": {"enabled": False, "hard": [{"source": "variation",
                                                                          "where": "pose_bin = 'profile'"}]},
                                 "augment": {"lowres_scale": [0.25, 0.5]}})
    assert cfg.selection.splits == ["easy"] and cfg.composer.hard[0].source == "variation"
    with pytest.raises(ConfigError, match="drop_suspect"):
        from_dict(DataConfig, {"selection": {"drop_suspect": True}})
    with pytest.raises(ConfigError, match="composer needs data.run"):
        validate_data_config(DataConfig(shards="s", composer=ComposerConfig(enabled=True)))
