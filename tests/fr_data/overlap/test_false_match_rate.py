"""The default identity threshold's rate is per evaluation query against ALL training classes: with
thousands of classes, queries of people in no class overlap some class by chance at most ``fpr`` of the
time (the threshold used to be per (query, class) pair: at 3000 classes and 1% every query matched ~30)."""

from __future__ import annotations

import numpy as np
import pytest

from fr_data.folders import overlap_folder as of
from fr_data.overlap.run import OverlapSettings, audit_overlap, open_training
from fr_data.overlap.sources import EvalSet
from tests.fr_data.overlap.helpers import random_unit, write_random_emb

CLASSES, QUERIES, DIM = 3000, 2000, 64


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many") / "emb"
    write_random_emb(folder, CLASSES, 1, DIM, seed=0)
    return open_training(folder, None)


@pytest.mark.parametrize(("fpr", "method", "at_least"), [
    (0.3, "impostor_order_statistic", 0.15),  # pair rate 1e-4: 1 - (1 - 1e-4)^3000 = 26% of queries
    (0.01, "impostor_normal_tail", 0.0),  # pair rate 3.3e-6, extrapolated
])
def test_chance_matches_per_query_stay_within_fpr(train, tmp_path, fpr, method, at_least):
    """2000 random queries (people in none of the 3000 random classes, no identities: each image is a
    query): the share of queries listed against any class is at most ``fpr``."""
    queries = random_unit(np.random.default_rng(7), QUERIES, DIM)
    impostors = EvalSet("impostors.bin", tmp_path, "embeddings", [str(i) for i in range(QUERIES)], None, None,
                        queries)
    info = audit_overlap(train, [impostors], tmp_path / "OUT", OverlapSettings(fpr=fpr))
    assert info["thresholds"]["identity"]["method"] == method
    rate = info["false_match_rate"]
    assert rate["per"] == "query" and rate["classes"] == CLASSES and rate["queries"] == QUERIES
    assert rate["pair_rate"] == pytest.approx(fpr / CLASSES)
    assert rate["expected_chance_queries"] == pytest.approx(QUERIES * fpr)
    rows = of.read_overlap(tmp_path / "OUT").to_pylist()
    matched = {r["eval_index"] for r in rows if r["match"] == "identity"}
    assert at_least * QUERIES <= len(matched) <= fpr * QUERIES
    assert not [r for r in rows if r["match"] == "image"]  # random vectors: no leaked images
