"""Overlap audit on planted embeddings: the overlapping training classes and the leaked images are named
(precision and recall >= 0.99, with and without evaluation identities), disjoint sets report nothing."""

from __future__ import annotations

import numpy as np
import pytest

from fr_data.folders import overlap_folder as of
from fr_data.mining.calibration import Calibration, fixed
from fr_data.overlap.audit import identity_matches
from fr_data.overlap.run import OverlapSettings, _warnings, audit_overlap, open_training
from tests.fr_data.mining.planted import brute_knn
from tests.fr_data.overlap.helpers import make_planted_overlap


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_planted_overlap(tmp_path_factory.mktemp("planted") / "emb")


@pytest.mark.parametrize("identities", [True, False], ids=["identity-folders", "bin-pack"])
def test_planted_overlap_is_named(planted, tmp_path, identities):
    train = open_training(planted.emb, None)
    info = audit_overlap(train, [planted.eval_set(identities)], tmp_path / "OUT", OverlapSettings())
    named = set(of.read_classes(tmp_path / "OUT").column("label").to_pylist())
    true = len(named & planted.overlap_labels)
    assert true / len(named) >= 0.99 and true / len(planted.overlap_labels) >= 0.99
    rows = of.read_overlap(tmp_path / "OUT").to_pylist()
    leaks = {(r["eval_index"], r["train_key"]) for r in rows if r["match"] == "image"}
    copies = {(i, key) for i, key in enumerate(planted.copied_keys) if key is not None}
    assert len(leaks & copies) / len(copies) >= 0.99
    assert len(leaks - copies) <= 0.01 * len(copies)
    assert info["thresholds"]["identity"]["method"] == "impostor_normal_tail"
    assert info["overlapping_classes"] == len(named)
    assert info["warnings"] == []
    # evaluation embeddings carry no pixels: the cosine rule decided, and overlap.json says so
    check = info["leak_pixel_check"]["sets"][planted.eval_set(identities).name]
    assert list(check) == ["skipped"] and "no images" in check["skipped"]
    assert all(r["pixel_sim"] is None for r in rows)


def test_disjoint_sets_report_no_overlap(planted, tmp_path):
    """Evaluation people who are in no training class (and no copies): nothing is reported."""
    rows = np.flatnonzero(planted.eval_identity >= 300)  # people 300.. are in no training row (nor copied)
    assert len(rows) == 240
    train = open_training(planted.emb, None)
    info = audit_overlap(train, [planted.eval_set(True, rows), planted.eval_set(False, rows)], tmp_path / "OUT",
                         OverlapSettings())
    assert of.read_overlap(tmp_path / "OUT").num_rows == 0
    assert info["overlapping_classes"] == 0


def test_identity_matches_lists_every_image_of_an_overlapping_identity():
    db = np.eye(3, dtype=np.float32)
    active = np.array([0, 2, 5])  # class ids of the centres
    v = np.array([[1, 0.1, 0], [1, -0.1, 0], [0, 0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    found, full = identity_matches(v, ["a", "a", "b"], db, active, 0.9, 2, brute_knn)
    assert found.eval_index.tolist() == [0, 1, 2] and found.class_id.tolist() == [0, 0, 5]
    assert found.rank.tolist() == [1, 1, 1] and full == 0
    assert np.allclose(found.cos, [1 / np.sqrt(1.01)] * 2 + [1.0])
    # without identities image 1 alone (cos 0.995 > 0.99) still matches; at 0.999 only image 2 does
    found, _ = identity_matches(v, None, db, active, 0.999, 2, brute_knn)
    assert found.eval_index.tolist() == [2]


def test_a_calibrated_threshold_of_one_warns_that_no_identity_can_overlap():
    """A tail fit capped at 1.0 (a backbone whose impostor cosines reach too high for the rate) can never be
    exceeded: an empty result then says nothing about the data, and overlap.json says so."""
    capped = Calibration("overlap.identity_cos", 1.0, "impostor_normal_tail", params={"fpr": 1e-5})
    assert len(_warnings(capped)) == 1 and "--fpr 1e-05" in _warnings(capped)[0]
    assert _warnings(Calibration("overlap.identity_cos", 0.999, "impostor_normal_tail", params={"fpr": 1e-5})) == []
    assert _warnings(fixed("overlap.identity_cos", 1.0)) == []  # an explicit --threshold is the user's call
