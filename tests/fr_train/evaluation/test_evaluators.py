"""Tests of fr_train.evaluation.evaluators on a tiny .bin pack and the tiny mining run's pairs, with a model
whose embedding is an image's mean colour (same class -> same colour -> same direction)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fr_data.formats.verification import decode_pack, load_bin, save_bin
from fr_train.config import EvalConfig
from fr_train.evaluation.evaluators import BinEvaluator, PairsEvaluator, build_evaluators, embed_in_chunks
from fr_train.evaluation.verification import flip_sum_embeddings, verify
from tests.fr_train.data.builders import face_jpeg
from tests.fr_train.helpers import tiny  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class MeanColour(nn.Module):
    """Embedding = per-channel mean minus a fixed offset (class colours point in distinct directions)."""

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.tensor([0.1, -0.2, 0.05]))

    def forward(self, x):
        return x.mean(dim=(2, 3)) - self.offset


@pytest.fixture
def pack(tmp_path):
    # 8 pairs: genuine pairs are two images (different stripes) of one class, impostors two classes
    images, issame = [], []
    for i in range(8):
        same = i % 2 == 0
        a, b = i % 6, i % 6 if same else (i + 3) % 6
        images += [face_jpeg(a, i), face_jpeg(b, i + 10)]
        issame.append(same)
    path = tmp_path / "tiny.bin"
    save_bin(path, images, issame)
    return path


def test_bin_accuracy_matches_direct_computation(pack):
    model = MeanColour()
    metrics = BinEvaluator(pack, batch_size=3, folds=4)(model)
    loaded = load_bin(pack)
    direct = verify(flip_sum_embeddings(model, decode_pack(loaded)), loaded.issame, 4)
    assert metrics == {"bin/tiny/accuracy": direct.accuracy, "bin/tiny/std": direct.std}
    assert metrics["bin/tiny/accuracy"] == 1.0  # colours separate the classes


def test_chunked_embeddings_equal_one_pass(pack):
    model = MeanColour()
    images = decode_pack(load_bin(pack))
    chunked = embed_in_chunks(model, len(images), lambda a, b: images[a:b], chunk=5, batch_size=2)
    np.testing.assert_allclose(chunked, flip_sum_embeddings(model, images), rtol=0, atol=1e-6)


def test_pairs_easy_hard_report(tiny):
    # tiny run: 12 easy_pos, 12 hard_pos (same class), 6 hard_neg (neighbouring classes)
    evaluator = PairsEvaluator(tiny.run, tiny.shards, fprs=(0.5, 0.01), folds=5)
    assert len(evaluator.keys) == len(set(evaluator.keys)) <= 36
    metrics = evaluator(MeanColour())
    assert metrics["pairs/accuracy/easy"] == metrics["pairs/accuracy/hard"] == 1.0
    assert metrics["pairs/accuracy/gap"] == 0.0
    assert metrics["pairs/tpr@fpr=0.5/easy"] == metrics["pairs/tpr@fpr=0.5/hard"] == 1.0
    assert np.isnan(metrics["pairs/tpr@fpr=0.01/easy"])  # 6 negatives cannot measure FPR 1e-2


def test_pairs_limit_takes_the_first_pairs(tiny):
    evaluator = PairsEvaluator(tiny.run, tiny.shards, max_pairs=2)
    assert all(len(a) == 2 for a, _ in evaluator.pairs.values())


def test_build_evaluators_from_config(tiny, pack):
    evaluators = build_evaluators(EvalConfig(bins=[str(pack)], pairs_run=str(tiny.run)), tiny.shards)
    assert [type(e) for e in evaluators] == [BinEvaluator, PairsEvaluator]
