"""Difficulty score and the easy / medium / hard split.

``difficulty = clip(1 - CR, 0, 1)`` with CR the CR-FIQA certainty ratio
``CCS / (NNCCS + 1 + eps)`` (Boutros et al., https://arxiv.org/abs/2112.06592): CCS is the cosine to
the sample's own leave-one-out class centre, NNCCS the highest cosine to another class centre. A sample
far from its identity *and* close to another one is difficult. CR was chosen over the plain margin
``CCS - NNCCS`` (CurricularFace's notion of a hard sample) because the margin's top end is dominated by
ambiguous samples sitting between two identities, while low-quality (low resolution, large yaw)
samples, the ones a teacher/student split is for, mainly lose CCS: on the planted test data the hard
split holds about 4.6x the base rate of truly hard samples with CR and about 3x with the margin.

The split is by quantiles over the eligible samples (valid vector, defined score, not a suspected
mislabel: label noise is not "hard", it is wrong), so its sizes do not depend on the model's cosine
scale: the top ``hard_fraction`` are ``hard``, the bottom ``easy_fraction`` are ``easy``.
"""

from __future__ import annotations

import numpy as np


def difficulty_score(certainty_ratio: np.ndarray) -> np.ndarray:
    """``clip(1 - CR, 0, 1)``; NaN stays NaN."""
    return np.clip(1.0 - certainty_ratio, 0.0, 1.0).astype(np.float32)


def split_by_quantile(difficulty: np.ndarray, eligible: np.ndarray, easy_fraction: float,
                      hard_fraction: float) -> np.ndarray:
    """Object array of ``easy`` / ``medium`` / ``hard`` (None where not eligible or NaN)."""
    out = np.full(len(difficulty), None, dtype=object)
    ok = eligible & ~np.isnan(difficulty)
    if not ok.any():
        return out
    d = difficulty[ok]
    hard_at = np.quantile(d, 1.0 - hard_fraction)
    easy_at = np.quantile(d, easy_fraction)
    labels = np.where(d >= hard_at, "hard", np.where(d <= easy_at, "easy", "medium")).astype(object)
    if hard_fraction <= 0:
        labels[labels == "hard"] = "medium"
    out[ok] = labels
    return out
