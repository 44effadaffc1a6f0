"""The DDL/OT composer's easy/hard content on the tiny fake run (layout in builders.py)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fr_data.io.errors import ConfigError
from fr_data.loading.shard_index import ShardIndex
from fr_train.data.composer import Pool, VariationPairs, build_composer
from fr_train.data.config import ComposerConfig, HardBranchConfig, SelectionConfig
from fr_train.data.reader import ImageReader
from fr_train.data.selection import resolve_selection
from tests.fr_train.data.builders import class_colour, make_tiny_data

PROFILE = HardBranchConfig(source="variation", where="pose_bin = 'profile'")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("composer"))


@pytest.fixture(scope="module")
def pairs(data):
    table = pq.read_table(data.run / "pairs.parquet").to_pylist()
    return {kind: {(r["key_a"], r["key_b"]) for r in table if r["kind"] == kind}
            for kind in ("easy_pos", "hard_pos")}


def composer_for(data, selection_cfg=None, **kw):
    selection = resolve_selection(selection_cfg or SelectionConfig(), data.shards, data.run)
    reader = ImageReader(selection, ShardIndex.open(data.shards))
    cfg = ComposerConfig(enabled=True, **{"identities": 4, "pairs": 3, **kw})
    return build_composer(cfg, reader, data.run, data.shards, seed=7), selection


def colour_of(image: torch.Tensor) -> np.ndarray:
    """The background colour of a decoded image (median ignores the stripe), in 0-255."""
    return (image.flatten(1).median(dim=1).values.numpy() * 0.5 + 0.5) * 255


def test_easy_branch_one_image_per_identity_from_the_easy_split(data, pairs):
    composer, selection = composer_for(data)
    easy_keys = data.keys_where(lambda c, i: i <= 2)
    for step in range(5):
        branch = composer.compose(0, step, 0)[0]
        assert set(branch.neg_keys) <= easy_keys
        assert len(set(branch.neg_labels.tolist())) == len(branch.neg_keys) == 4  # distinct identities
        assert branch.neg_labels.tolist() == [selection.label_of(k) for k in branch.neg_keys]
        assert set(branch.pos_keys) <= pairs["easy_pos"] and len(set(branch.pos_keys)) == 3
        assert branch.pos_labels.tolist() == [selection.label_of(a) for a, _ in branch.pos_keys]
        assert branch.neg_images.shape == (4, 3, 112, 112)
        assert branch.pos_a.shape == branch.pos_b.shape == (3, 3, 112, 112)


def test_hard_pairs_branch_uses_hard_pos_pairs_and_hard_negatives(data, pairs):
    composer, _ = composer_for(data)
    hard_keys = data.keys_where(lambda c, i: i >= 4)
    for step in range(5):
        branch = composer.compose(1, step, 0)[1]
        assert set(branch.pos_keys) <= pairs["hard_pos"]
        assert set(branch.neg_keys) <= hard_keys and len(set(branch.neg_labels.tolist())) == 4


def test_variation_branch_pairs_a_profile_image_with_an_easy_image_of_the_same_identity(data):
    composer, selection = composer_for(data, hard=[HardBranchConfig(), PROFILE])
    profile = data.keys_where(lambda c, i: i >= 4)
    easy = data.keys_where(lambda c, i: i <= 2)
    for step in range(5):
        branch = composer.compose(0, step, 1)[2]
        for (a, b), label in zip(branch.pos_keys, branch.pos_labels.tolist()):
            assert a in profile and b in easy and a != b
            assert selection.label_of(a) == selection.label_of(b) == label


def test_pair_images_really_share_identities(data):
    composer, selection = composer_for(data, hard=[HardBranchConfig(), PROFILE], flip=True)
    for branch in composer.compose(2, 3, 0):
        for a, b, label in zip(branch.pos_a, branch.pos_b, branch.pos_labels.tolist()):
            np.testing.assert_allclose(colour_of(a), class_colour(label), atol=4)
            np.testing.assert_allclose(colour_of(b), class_colour(label), atol=4)
        for image, label in zip(branch.neg_images, branch.neg_labels.tolist()):
            np.testing.assert_allclose(colour_of(image), class_colour(label), atol=4)


def test_draws_are_deterministic_per_epoch_step_rank(data):
    composer, _ = composer_for(data)
    first = composer.compose(3, 11, 1)
    again = composer.compose(3, 11, 1)
    for x, y in zip(first, again):
        assert x.neg_keys == y.neg_keys and x.pos_keys == y.pos_keys
        assert torch.equal(x.neg_images, y.neg_images) and torch.equal(x.pos_a, y.pos_a)
    others = [composer.compose(3, 11, 0)[0].neg_keys, composer.compose(3, 12, 1)[0].neg_keys,
              composer.compose(4, 11, 1)[0].neg_keys]
    assert any(keys != first[0].neg_keys for keys in others)


def test_only_selected_samples_are_drawn_and_dropped_pairs_are_counted(data):
    cfg = SelectionConfig(drop_duplicates=True, drop_suspects=True)
    composer, selection = composer_for(data, cfg, pairs=2)
    # easy_pos (2,0)-(2,1) and (3,0)-(3,2) lose a duplicate; hard_pos (1,0)-(1,4) loses the suspect (1,4)
    # and (2,1)-(2,5) the duplicate (2,1); the hard pool (images 4-5) loses the suspect (1,4)
    expected = {"matched": 12, "not_selected": 2, "label_differs": 0, "pairs": 10}
    assert composer.report["easy"]["positives"] == expected
    assert composer.report["hard1"]["positives"]["not_selected"] == 2
    assert composer.report["hard1"]["negatives"]["not_selected"] == 1
    for step in range(10):
        for branch in composer.compose(0, step, 0):
            used = branch.neg_keys + [k for pair in branch.pos_keys for k in pair]
            assert (selection.positions(used) >= 0).all()


def test_merged_classes_share_a_label_in_branches(data):
    composer, selection = composer_for(data, SelectionConfig(merge_classes=True), identities=5)
    for step in range(5):
        branch = composer.compose(0, step, 0)[0]
        assert sorted(branch.neg_labels.tolist()) == [0, 1, 2, 3, 4]  # 5 identities after the merge


def test_too_small_pools_and_bad_predicates_are_config_errors(data):
    with pytest.raises(ConfigError, match="6 identities.*asks for 7 identities"):
        composer_for(data, identities=7)
    with pytest.raises(ConfigError, match="12 pairs.*13 pairs"):
        composer_for(data, pairs=13)
    with pytest.raises(ConfigError, match=r"composer\.hard\[0\]\.where.*no_such_bin"):
        composer_for(data, hard=[HardBranchConfig(where="no_such_bin = 'x'")])


def test_branch_predicates_are_read_only(data, tmp_path):
    before = sorted((p.name, p.stat().st_mtime_ns, p.read_bytes()) for p in data.run.iterdir())
    copy = f"COPY (SELECT 1 AS x) TO '{data.run / 'pairs.parquet'}' (FORMAT parquet)"
    with pytest.raises(ConfigError, match=r"^composer\.hard\[0\]\.where: query refused: COPY"):
        composer_for(data, hard=[HardBranchConfig(where=f"true); {copy}; SELECT key FROM samples WHERE (true")])
    with pytest.raises(ConfigError, match=r"^composer\.hard\[0\]\.pairs_where: query refused: .*/etc/passwd"):
        composer_for(data, hard=[HardBranchConfig(source="pairs", where="split = 'hard'",
                                                  pairs_where="key_a IN (SELECT column0 FROM read_csv('/etc/passwd'))")])
    with pytest.raises(ConfigError, match=r"^composer\.easy_where: query refused: ATTACH"):
        composer_for(data, easy_where=f"true); ATTACH '{tmp_path / 'x.db'}' AS d; SELECT key FROM samples WHERE (true")
    assert sorted((p.name, p.stat().st_mtime_ns, p.read_bytes()) for p in data.run.iterdir()) == before
    assert list(tmp_path.iterdir()) == []


def test_variation_pairs_never_pair_an_image_with_itself():
    hard = Pool(np.array([0, 1, 2, 5]), np.array([0, 0, 1, 2]))
    easy = Pool(np.array([0, 3]), np.array([0, 1]))
    pairs = VariationPairs(hard, easy)
    # image 0's only easy partner is itself, label 2 has no easy image: only hard 1 and 2 remain
    assert sorted(pairs.hard.tolist()) == [1, 2] and len(pairs) == 2
    a, b = pairs.draw(2, np.random.default_rng(0))
    assert dict(zip(a.tolist(), b.tolist())) == {1: 0, 2: 3}
