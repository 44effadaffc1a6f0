"""Verification metrics: hand cases, brute-force ROC reference, flip-sum embeddings, easy/hard gap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fr_train.evaluation.verification import (
    THRESHOLDS,
    PairSet,
    easy_hard_gap,
    flip_sum_embeddings,
    kfold_splits,
    pair_distances,
    pair_scores,
    tpr_at_fpr,
    verify,
    verify_distances,
)


def _pairs_at_angles(angles_deg: list[float]) -> np.ndarray:
    """2-D embeddings: pair i = (unit at 0 deg, unit at angles_deg[i]) scaled by arbitrary norms."""
    rows = []
    for i, a in enumerate(angles_deg):
        rows.append([2.0 + i, 0.0])
        rows.append([0.5 * math.cos(math.radians(a)), 0.5 * math.sin(math.radians(a))])
    return np.array(rows)


def test_kfold_splits_are_unshuffled_with_longer_first_folds():
    folds = kfold_splits(23, 10)
    assert [f.size for f in folds] == [3, 3, 3] + [2] * 7
    assert np.array_equal(np.concatenate(folds), np.arange(23))
    with pytest.raises(ValueError):
        kfold_splits(5, 10)


def test_pair_distances_are_squared_l2_of_normalised_rows():
    emb = _pairs_at_angles([0.0, 90.0, 180.0])
    np.testing.assert_allclose(pair_distances(emb), [0.0, 2.0, 4.0], atol=1e-12)
    np.testing.assert_allclose(pair_scores(emb), [1.0, 0.0, -1.0], atol=1e-12)


def test_verify_on_separable_pairs_is_perfect_with_the_first_separating_threshold():
    # same pairs at squared distance 0.503, different pairs at 1.5 (distance = 2 - 2 cos angle)
    same_angle, diff_angle = (math.degrees(math.acos(1 - d / 2)) for d in (0.503, 1.5))
    angles = [same_angle if i % 2 == 0 else diff_angle for i in range(40)]
    issame = np.array([i % 2 == 0 for i in range(40)])
    result = verify(_pairs_at_angles(angles), issame)
    assert result.accuracy == 1.0 and result.std == 0.0
    assert result.thresholds.shape == (10,)
    np.testing.assert_allclose(result.thresholds, 0.51)  # first grid threshold above 0.503
    np.testing.assert_allclose(result.fold_accuracies, 1.0)


def test_verify_distances_two_fold_hand_case():
    dist = np.array([0.2, 0.3, 0.4, 0.9, 0.1, 0.5, 0.6, 1.0])
    issame = np.array([True, False, True, False, True, True, False, False])
    result = verify_distances(dist, issame, nrof_folds=2)
    # fold 1 trains on the last four pairs (perfect for 0.5 < t <= 0.6 -> 0.51) and scores 3/4;
    # fold 2 trains on the first four (best 3/4 first reached for 0.2 < t <= 0.3 -> 0.21), scores 3/4
    np.testing.assert_allclose(result.thresholds, [0.51, 0.21])
    np.testing.assert_allclose(result.fold_accuracies, [0.75, 0.75])
    assert result.accuracy == pytest.approx(0.75) and result.std == pytest.approx(0.0)


def test_verify_matches_a_direct_threshold_sweep():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(2 * 103, 16))
    issame = rng.random(103) < 0.5
    emb[1::2][issame] = emb[0::2][issame] + 0.9 * rng.normal(size=(issame.sum(), 16))
    result = verify(emb, issame, nrof_folds=10)
    dist = pair_distances(emb)
    accs, chosen = [], []
    for test in np.array_split(np.arange(103), 10):
        train = np.setdiff1d(np.arange(103), test)
        train_acc = [np.mean((dist[train] < t) == issame[train]) for t in THRESHOLDS]
        best = THRESHOLDS[int(np.argmax(train_acc))]
        chosen.append(best)
        accs.append(np.mean((dist[test] < best) == issame[test]))
    np.testing.assert_allclose(result.thresholds, chosen)
    assert result.accuracy == pytest.approx(np.mean(accs)) and result.std == pytest.approx(np.std(accs))
    with pytest.raises(ValueError, match="2 per pair"):
        verify(emb[:-1], issame)


def _brute_force_tpr(scores: np.ndarray, issame: np.ndarray, fpr: float) -> float:
    """Best TPR over every candidate threshold (accept score > thr) whose FPR does not exceed fpr."""
    neg, pos = scores[~issame], scores[issame]
    if fpr * neg.size < 1:
        return float("nan")
    best = 0.0
    for thr in np.concatenate([[-np.inf], np.unique(scores)]):
        if np.mean(neg > thr) <= fpr:
            best = max(best, np.mean(pos > thr))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tpr_at_fpr_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    issame = rng.random(700) < 0.3
    scores = np.round(np.where(issame, rng.normal(0.6, 0.2, 700), rng.normal(0.1, 0.2, 700)), 2)  # ties
    fprs = (0.5, 0.1, 0.05, 0.013, 1e-2, 1e-3, 1e-4)
    roc = tpr_at_fpr(scores, issame, fprs)
    expected = [_brute_force_tpr(scores, issame, f) for f in fprs]
    np.testing.assert_allclose(roc.tprs, expected, equal_nan=True)
    assert roc.num_negatives == int((~issame).sum())
    assert np.isnan(roc.tprs[-1]) and not roc.reachable[-1] and roc.reachable[0]


def test_tpr_at_fpr_hand_case():
    negatives = np.arange(10) / 10  # 0.0 ... 0.9
    positives = np.array([0.95, 0.85, 0.5])
    scores = np.concatenate([negatives, positives])
    issame = np.array([False] * 10 + [True] * 3)
    roc = tpr_at_fpr(scores, issame, (1.0, 0.1, 0.2, 0.01))
    # fpr 0.1: one false accept allowed -> threshold 0.8 (2nd highest negative) -> 0.95, 0.85 accepted
    np.testing.assert_allclose(roc.tprs, [1.0, 2 / 3, 2 / 3, np.nan], equal_nan=True)
    np.testing.assert_allclose(roc.thresholds, [-np.inf, 0.8, 0.7, np.nan], equal_nan=True)
    assert roc.as_dict()[0.1] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="positive and negative"):
        tpr_at_fpr(positives, np.ones(3, bool))


def test_flip_sum_embeddings_adds_the_mirrored_view_and_normalises():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    model.train()
    images = torch.randn(7, 3, 4, 4)
    got = flip_sum_embeddings(model, images, batch_size=3)
    with torch.no_grad():
        expected = nn.functional.normalize(model(images) + model(images.flip(3)), dim=1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert got.dtype == np.float32 and model.training


def test_easy_hard_gap_report():
    flags = np.array(([True] * 3 + [False] * 3) * 5)
    easy = PairSet(np.array([0.9, 0.8, 0.7, 0.1, 0.0, -0.1] * 5), flags)
    hard_scores = np.array([0.9, 0.2, 0.05, 0.3, 0.0, -0.1] * 5)  # one genuine pair falls below an impostor
    hard = PairSet(hard_scores, flags)
    report = easy_hard_gap(easy, hard, fprs=(0.2, 1e-3), nrof_folds=5)
    assert report.easy_accuracy == 1.0 and report.easy_tpr[0] == 1.0
    # hard: impostors 0.3 x5 above genuine 0.2/0.05; at fpr 0.2 (3 false accepts of 15) the threshold is
    # the 4th highest impostor score 0.3 -> only the 0.9 genuines pass
    assert report.hard_tpr[0] == pytest.approx(1 / 3)
    assert report.tpr_gap[0] == pytest.approx(2 / 3)
    assert np.isnan(report.tpr_gap[1])
    assert report.hard_accuracy == pytest.approx(25 / 30)  # the five 0.3 impostors cannot be separated
    assert report.accuracy_gap == pytest.approx(1.0 - report.hard_accuracy)
    rows = report.rows()
    assert rows[0]["metric"] == "accuracy" and rows[1]["metric"] == "tpr@fpr=0.2"
    from_emb = PairSet.from_embeddings(_pairs_at_angles([0.0, 90.0]), [True, False])
    np.testing.assert_allclose(from_emb.scores, [1.0, 0.0], atol=1e-12)
