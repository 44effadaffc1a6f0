"""The error-versus-discard curve (ERC) that judges a quality score: how the false non-match rate falls as
the lowest-quality genuine pairs are discarded, at a threshold fixed by a false-match rate.

Pairs follow the layout of :mod:`fr_train.evaluation.verification`: a score per pair, a genuine flag, and
the qualities of its two images (the pair's quality is their minimum, :func:`pair_quality`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ErcCurve", "erc", "pair_quality"]


def _floor_share(share: float, count: int) -> int:
    """``floor(share * count)``, robust to the binary rounding of decimal shares (0.29 * 100 gives 29)."""
    return math.floor(share * count * (1 + 1e-12))


@dataclass(frozen=True)
class ErcCurve:
    """An error-versus-discard curve (:func:`erc`).

    Attributes:
        fractions: the reject fractions r, increasing, in [0, 1).
        fnmr: FNMR after discarding the floor(r * N_genuine) lowest-quality genuine pairs, per fraction.
        discarded: how many genuine pairs each fraction discards.
        threshold: the score threshold fixed by ``fmr`` over all impostor pairs (match: score > it).
        fmr: the requested false-match rate.
        achieved_fmr: the share of impostor pairs above the threshold (<= ``fmr``).
        area: area under the curve, trapezoid rule over ``fractions`` (0 for a single fraction); in
            FNMR x fraction units, so the flat curve of a useless quality score has area FNMR(0) x span.
        num_genuine: genuine pairs.
        num_impostor: impostor pairs.
    """

    fractions: np.ndarray
    fnmr: np.ndarray
    discarded: np.ndarray
    threshold: float
    fmr: float
    achieved_fmr: float
    area: float
    num_genuine: int
    num_impostor: int


def pair_quality(image_quality: np.ndarray) -> np.ndarray:
    """Pair qualities of the ``.bin`` layout: the minimum of images ``2i`` and ``2i + 1``."""
    q = np.asarray(image_quality, dtype=np.float64)
    if q.ndim != 1 or q.size % 2:
        raise ValueError(f"expected an even-length vector (two images per pair), got shape {q.shape}")
    return np.minimum(q[0::2], q[1::2])


def _erc_inputs(scores, issame, quality, fractions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    quality = np.asarray(quality, dtype=np.float64)
    if quality.ndim == 2 and quality.shape[1] == 2:
        quality = quality.min(axis=1)
    fractions = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if scores.ndim != 1 or issame.shape != scores.shape or quality.shape != scores.shape:
        raise ValueError(f"scores {scores.shape}, issame {issame.shape} and quality {quality.shape} must "
                         "describe the same pairs (quality: (P,) pair qualities or (P, 2) image qualities)")
    if not np.isfinite(quality).all() or not np.isfinite(scores).all():
        raise ValueError("scores and qualities must be finite")
    if issame.all() or not issame.any():
        raise ValueError(f"need genuine and impostor pairs, got {int(issame.sum())} and {int((~issame).sum())}")
    if fractions.size == 0 or not ((fractions >= 0) & (fractions < 1)).all() or (np.diff(fractions) <= 0).any():
        raise ValueError(f"reject fractions must be increasing values in [0, 1), got {fractions.tolist()}")
    return scores, issame, quality, fractions


def erc(scores: np.ndarray, issame: np.ndarray, quality: np.ndarray, fmr: float,
        reject_fractions: Sequence[float] | np.ndarray) -> ErcCurve:
    """Error-versus-discard curve of a quality score at a fixed false-match rate.

    The threshold is fixed once, over all impostor pairs: the (floor(fmr * N_impostor) + 1)-th highest
    impostor score (-inf when that exceeds N_impostor), and a pair matches when its score is above it.
    For each reject fraction r, the floor(r * N_genuine) genuine pairs of lowest quality are discarded
    (a stable sort: among equal qualities the earlier pair goes first, the later ones are kept) and the
    FNMR is the share of the remaining genuine pairs whose score is at or below the threshold. Impostor
    pairs are never discarded. The area under the curve is the trapezoid rule over the given fractions.

    Args:
        scores: ``(P,)`` similarity per pair (higher = more alike).
        issame: ``(P,)`` genuine flags.
        quality: ``(P, 2)`` qualities of the two images of each pair (the pair's quality is their
            minimum), or ``(P,)`` pair qualities (higher = better).
        fmr: the false-match rate fixing the threshold, in (0, 1].
        reject_fractions: increasing fractions of genuine pairs to discard, in [0, 1).

    Raises:
        ValueError: mismatched shapes, non-finite values, no genuine or no impostor pair, bad fractions.
    """
    scores, issame, quality, fractions = _erc_inputs(scores, issame, quality, reject_fractions)
    if not 0 < fmr <= 1:
        raise ValueError(f"fmr must lie in (0, 1], got {fmr}")
    impostor = np.sort(scores[~issame])[::-1]
    allowed = _floor_share(fmr, impostor.size)
    threshold = -np.inf if allowed >= impostor.size else float(impostor[allowed])
    genuine, genuine_quality = scores[issame], quality[issame]
    order = np.argsort(genuine_quality, kind="stable")  # lowest quality first, ties in pair order
    misses = np.concatenate([[0], np.cumsum(genuine[order] <= threshold)])
    discarded = np.array([_floor_share(r, genuine.size) for r in fractions], dtype=np.int64)
    fnmr = (misses[-1] - misses[discarded]) / (genuine.size - discarded)
    area = float(np.sum(np.diff(fractions) * (fnmr[1:] + fnmr[:-1]) / 2))
    return ErcCurve(fractions, fnmr, discarded, threshold, float(fmr),
                    float((impostor > threshold).mean()), area, int(genuine.size), int(impostor.size))
