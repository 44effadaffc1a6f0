"""Verification metrics: the InsightFace 10-fold accuracy, TPR at fixed FPR and an easy-vs-hard gap report
(the error-versus-discard curve that judges a quality score is :mod:`fr_train.evaluation.erc`).

Pair layout of ``.bin`` packs (see InsightFace ``eval/verification.py``): embeddings rows ``2i`` and
``2i + 1`` form pair ``i``; ``issame[i]`` tells whether it is a genuine pair. Pairs can also come
straight from a pairs table as a score per pair plus a boolean (:class:`PairSet`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "THRESHOLDS", "DEFAULT_FPRS", "VerificationResult", "RocPoints", "PairSet", "GapReport",
    "kfold_splits", "pair_distances", "pair_scores", "verify", "verify_distances", "flip_sum_embeddings",
    "tpr_at_fpr", "easy_hard_gap",
]

#: Squared-L2 distance thresholds of the InsightFace protocol (distance < threshold means "same").
THRESHOLDS = np.arange(0, 4, 0.01)
#: FPR levels reported by default (IJB-style 1e-1 ... 1e-6).
DEFAULT_FPRS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of :func:`verify`: mean/std accuracy over folds and each fold's chosen threshold."""

    accuracy: float
    std: float
    thresholds: np.ndarray
    fold_accuracies: np.ndarray


def _normalise(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def _check_pairs(embeddings: np.ndarray, issame: np.ndarray) -> None:
    if embeddings.ndim != 2 or embeddings.shape[0] != 2 * issame.shape[0]:
        raise ValueError(f"expected {2 * issame.shape[0]} embedding rows (2 per pair) as a 2-D array, "
                         f"got shape {embeddings.shape}")


def pair_distances(embeddings: np.ndarray) -> np.ndarray:
    """Squared L2 distance between L2-normalised rows ``2i`` and ``2i + 1`` (in [0, 4])."""
    unit = _normalise(embeddings)
    return np.sum((unit[0::2] - unit[1::2]) ** 2, axis=1)


def pair_scores(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity between rows ``2i`` and ``2i + 1``."""
    unit = _normalise(embeddings)
    return np.sum(unit[0::2] * unit[1::2], axis=1)


def kfold_splits(num_items: int, num_folds: int) -> list[np.ndarray]:
    """Unshuffled K-fold test indices (the first ``num_items % num_folds`` folds one item longer)."""
    if not 2 <= num_folds <= num_items:
        raise ValueError(f"need 2 <= folds <= items, got {num_folds} folds for {num_items} items")
    return np.array_split(np.arange(num_items), num_folds)


def _accuracies(dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy of "same iff dist < threshold" for every threshold, by counting in sorted arrays."""
    same = np.sort(dist[issame])
    diff = np.sort(dist[~issame])
    true_accepts = np.searchsorted(same, thresholds, side="left")
    true_rejects = diff.size - np.searchsorted(diff, thresholds, side="left")
    return (true_accepts + true_rejects) / dist.size


def verify_distances(dist: np.ndarray, issame: np.ndarray, nrof_folds: int = 10,
                     thresholds: np.ndarray = THRESHOLDS) -> VerificationResult:
    """K-fold verification accuracy on per-pair distances (see :func:`verify`)."""
    dist = np.asarray(dist, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    chosen, accuracies = [], []
    for test in kfold_splits(dist.size, nrof_folds):
        train = np.setdiff1d(np.arange(dist.size), test, assume_unique=True)
        best = thresholds[int(np.argmax(_accuracies(dist[train], issame[train], thresholds)))]
        chosen.append(best)
        accuracies.append(_accuracies(dist[test], issame[test], np.array([best]))[0])
    accuracies = np.array(accuracies)
    return VerificationResult(float(accuracies.mean()), float(accuracies.std()), np.array(chosen), accuracies)


def verify(embeddings: np.ndarray, issame: Sequence[bool] | np.ndarray,
           nrof_folds: int = 10) -> VerificationResult:
    """InsightFace verification accuracy.

    Embeddings are L2-normalised; pair ``i`` (rows ``2i``, ``2i + 1``) is predicted "same" when its
    squared L2 distance is below the threshold. Thresholds 0, 0.01, ..., 3.99; unshuffled K-fold over
    pairs; in each fold the threshold with the best accuracy on the other folds (first one on ties)
    is applied to the held-out fold. Accuracy and std (population, ddof 0) over the folds.

    Args:
        embeddings: ``(2P, D)`` features, e.g. from :func:`flip_sum_embeddings`.
        issame: ``(P,)`` booleans.
        nrof_folds: number of folds (10 in the protocol).
    """
    issame = np.asarray(issame, dtype=bool)
    embeddings = np.asarray(embeddings)
    _check_pairs(embeddings, issame)
    return verify_distances(pair_distances(embeddings), issame, nrof_folds)


@torch.no_grad()
def flip_sum_embeddings(model: nn.Module, images: torch.Tensor | np.ndarray,
                        batch_size: int = 64) -> np.ndarray:
    """L2-normalised ``embed(x) + embed(flip(x))`` for ``images`` ``(N, 3, H, W)`` (already normalised).

    The model runs in eval mode on its own device, ``batch_size`` images at a time; its training flag
    is restored afterwards. Returns float32 ``(N, D)``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    images = torch.as_tensor(images)
    parts = []
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size].to(device=device, dtype=torch.float32)
            feats = model(batch).float() + model(torch.flip(batch, dims=[3])).float()
            parts.append(torch.nn.functional.normalize(feats, dim=1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32)


@dataclass(frozen=True)
class RocPoints:
    """TPR at target FPRs. ``tprs``/``thresholds`` are NaN where the FPR is unreachable."""

    fprs: np.ndarray
    tprs: np.ndarray
    thresholds: np.ndarray
    num_positives: int
    num_negatives: int

    @property
    def reachable(self) -> np.ndarray:
        """True where at least one false accept is allowed (FPR · #negatives >= 1)."""
        return ~np.isnan(self.tprs)

    def as_dict(self) -> dict[float, float]:
        """``{target FPR: TPR}``."""
        return {float(f): float(t) for f, t in zip(self.fprs, self.tprs)}


def tpr_at_fpr(scores: np.ndarray, issame: np.ndarray, fprs: Sequence[float] = DEFAULT_FPRS) -> RocPoints:
    """TPR at each target FPR, read off the empirical ROC without interpolation.

    Pairs with ``score > threshold`` are accepted. For a target f with N negatives, at most
    k = ⌊f·N⌋ false accepts are allowed, and the threshold is the (k+1)-th highest negative score
    (−inf when k >= N): the loosest ROC point whose FPR does not exceed f, hence the highest TPR
    among them (ties at the threshold are rejected, so the achieved FPR may fall below f). When
    f·N < 1 the level is unreachable with this many negatives and TPR/threshold are NaN.

    Args:
        scores: ``(P,)`` similarity per pair (higher = more alike), e.g. :func:`pair_scores`.
        issame: ``(P,)`` booleans.
        fprs: target false positive rates in (0, 1].
    """
    scores = np.asarray(scores, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    if scores.shape != issame.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and issame {issame.shape} must be equal-length vectors")
    positives = np.sort(scores[issame])
    negatives = np.sort(scores[~issame])[::-1]
    if positives.size == 0 or negatives.size == 0:
        raise ValueError(f"need positive and negative pairs, got {positives.size} and {negatives.size}")
    targets = np.asarray(fprs, dtype=np.float64)
    tprs = np.full(targets.shape, np.nan)
    thresholds = np.full(targets.shape, np.nan)
    for i, target in enumerate(targets):
        allowed = math.floor(target * negatives.size * (1 + 1e-12))
        if allowed < 1:
            continue
        threshold = -np.inf if allowed >= negatives.size else negatives[allowed]
        accepted = positives.size - np.searchsorted(positives, threshold, side="right")
        tprs[i], thresholds[i] = accepted / positives.size, threshold
    return RocPoints(targets, tprs, thresholds, int(positives.size), int(negatives.size))


@dataclass(frozen=True)
class PairSet:
    """Cosine similarity per pair plus genuine/impostor flags (from a ``.bin`` pack or a pairs table)."""

    scores: np.ndarray
    issame: np.ndarray

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray, issame: Sequence[bool] | np.ndarray) -> PairSet:
        """Pairs of rows ``2i``, ``2i + 1`` of ``embeddings`` (the ``.bin`` layout)."""
        issame = np.asarray(issame, dtype=bool)
        _check_pairs(np.asarray(embeddings), issame)
        return cls(pair_scores(embeddings), issame)


@dataclass(frozen=True)
class GapReport:
    """TPR@FPR and 10-fold accuracy on an easy and a hard pair set; gaps are easy minus hard."""

    fprs: np.ndarray
    easy_tpr: np.ndarray
    hard_tpr: np.ndarray
    easy_accuracy: float
    hard_accuracy: float

    @property
    def tpr_gap(self) -> np.ndarray:
        return self.easy_tpr - self.hard_tpr

    @property
    def accuracy_gap(self) -> float:
        return self.easy_accuracy - self.hard_accuracy

    def rows(self) -> list[dict[str, float | str]]:
        """One row per metric (``metric``, ``easy``, ``hard``, ``gap``), for tables and logs."""
        rows: list[dict[str, float | str]] = [{"metric": "accuracy", "easy": self.easy_accuracy,
                                               "hard": self.hard_accuracy, "gap": self.accuracy_gap}]
        for fpr, easy, hard in zip(self.fprs, self.easy_tpr, self.hard_tpr):
            rows.append({"metric": f"tpr@fpr={fpr:g}", "easy": float(easy), "hard": float(hard),
                         "gap": float(easy - hard)})
        return rows


def easy_hard_gap(easy: PairSet, hard: PairSet, fprs: Sequence[float] = DEFAULT_FPRS,
                  nrof_folds: int = 10) -> GapReport:
    """Compare an easy and a hard pair set (e.g. frontal vs profile, high vs low resolution).

    Accuracy uses :func:`verify_distances` on ``2 − 2·score`` (the squared L2 distance of normalised
    embeddings, so scores must be cosine similarities); TPR@FPR uses :func:`tpr_at_fpr`. Unreachable
    FPR levels stay NaN, and so does their gap.
    """
    def accuracy(pairs: PairSet) -> float:
        distances = 2.0 - 2.0 * np.asarray(pairs.scores, np.float64)
        return verify_distances(distances, pairs.issame, nrof_folds).accuracy

    easy_roc = tpr_at_fpr(easy.scores, easy.issame, fprs)
    hard_roc = tpr_at_fpr(hard.scores, hard.issame, fprs)
    return GapReport(easy_roc.fprs, easy_roc.tprs, hard_roc.tprs, accuracy(easy), accuracy(hard))
