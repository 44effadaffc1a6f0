"""Difficulty score and the easy / medium / hard split.

Two kinds of evidence say a sample is hard:

* **for the model**: ``1 - CR`` with CR the CR-FIQA certainty ratio ``CCS / (NNCCS + 1 + eps)``
  (Boutros et al., https://arxiv.org/abs/2112.06592): CCS is the cosine to the sample's own leave-one-out
  class centre, NNCCS the highest cosine to another class centre. A sample far from its identity *and*
  close to another one is difficult. CR was chosen over the plain margin ``CCS - NNCCS`` (CurricularFace's
  notion of a hard sample) because the margin's top end is dominated by ambiguous samples sitting
  between two identities, while low-quality (low resolution, large yaw) samples, the ones a
  teacher/student split is for, mainly lose CCS.
* **in the capture**: ``1 - resolution``, the image-based effective-resolution estimate of
  ``hardmine embed`` (``fr_data.embed.resolution``). A backbone that is still weak on a variation places its
  degraded images no further from their centres than ordinary ones (measured on the synthetic faces with
  the demo's small backbone: images at 1/4 resolution had the same mean CCS as full-resolution ones), so
  the model term alone misses them; the capture term does not depend on the model.

A third, optional term is **a quality model's verdict**: ``-quality``, the score a face-quality regressor
gave the image (the embeddings index's ``quality`` column, ``hardmine embed --quality-model``, e.g. the
SDD-FIQA regressor of ``configs/sdd_fiqa_synth.yaml``); low quality is hard.

``difficulty`` is the weighted mean of the terms' percentile ranks over the samples where each is defined
(``difficulty.resolution_weight`` and ``difficulty.quality_weight`` weigh the capture and quality terms
against the model term's 1; a weight of 0, or an embedding folder without the column, leaves that term
out). Ranks make the
two commensurable whatever the model's cosine scale. On the synthetic ground truth the hard split held
2.0x the base rate of truly hard images (|yaw| >= 60 or scale <= 1/4) with the model term alone and
3.6x with both (docs/benchmarks.md).

The split is by quantiles over the eligible samples (valid vector, defined score, not a suspected
mislabel: label noise is not "hard", it is wrong), so its sizes do not depend on the model's cosine
scale: the top ``hard_fraction`` are ``hard``, the bottom ``easy_fraction`` are ``easy``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fr_data.folders.run_folder import SPLITS
from fr_data.mining.ranks import percentile_ranks

__all__ = ["model_difficulty", "difficulty_score", "split_by_quantile", "split_codes_by_quantile", "split_names"]


def model_difficulty(certainty_ratio: np.ndarray) -> np.ndarray:
    """``clip(1 - CR, 0, 1)``; NaN stays NaN."""
    return np.clip(1.0 - certainty_ratio, 0.0, 1.0).astype(np.float32)


def difficulty_score(certainty_ratio: np.ndarray, resolution: np.ndarray | None = None,
                     resolution_weight: float = 0.0, quality: np.ndarray | None = None,
                     quality_weight: float = 0.0) -> np.ndarray:
    """Weighted mean of the percentile ranks of ``1 - CR`` (weight 1), ``1 - resolution`` and ``-quality``.

    A term that is NaN for a sample drops out of that sample's mean; NaN when all are. Without the
    capture and quality terms (arrays None or weights 0) the result is the percentile rank of ``1 - CR``.
    """
    if resolution_weight < 0 or quality_weight < 0:
        raise ValueError(f"weights must be >= 0, got resolution {resolution_weight}, quality {quality_weight}")
    terms: list[tuple[Callable[[], np.ndarray], float]] = [(lambda: model_difficulty(certainty_ratio), 1.0)]
    if resolution is not None and resolution_weight > 0:
        terms.append((lambda: 1.0 - np.asarray(resolution, np.float64), resolution_weight))
    if quality is not None and quality_weight > 0:
        terms.append((lambda: -np.asarray(quality, np.float64), quality_weight))
    total = np.zeros(len(certainty_ratio))
    weight = np.zeros(len(certainty_ratio))
    for term, w in terms:  # one term's ranks at a time (rank 0 of a mining run ranks every row)
        rank = percentile_ranks(term())
        ok = np.isfinite(rank)
        total[ok] += w * rank[ok]
        weight[ok] += w
        del rank, ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / weight, np.nan).astype(np.float32)


def split_codes_by_quantile(difficulty: np.ndarray, eligible: np.ndarray, easy_fraction: float,
                            hard_fraction: float) -> np.ndarray:
    """int8 split codes: the index in ``run_folder.SPLITS`` (``easy`` / ``medium`` / ``hard``), -1 where not
    eligible or NaN (1 B a row: rank 0 of a mining run splits every row)."""
    out = np.full(len(difficulty), -1, np.int8)
    ok = eligible & ~np.isnan(difficulty)
    if not ok.any():
        return out
    d = difficulty[ok]
    hard_at = np.quantile(d, 1.0 - hard_fraction)
    easy_at = np.quantile(d, easy_fraction)
    codes = np.full(len(d), SPLITS.index("medium"), np.int8)
    codes[d <= easy_at] = SPLITS.index("easy")
    codes[d >= hard_at] = SPLITS.index("hard" if hard_fraction > 0 else "medium")  # hard wins a tie with easy
    out[ok] = codes
    return out


#: int8 split code + 1 -> its name (None for -1).
_NAME_OF_CODE = np.array([None, *SPLITS], dtype=object)


def split_names(codes: np.ndarray) -> np.ndarray:
    """Object array of the split names of int8 ``codes`` (None for -1); every row shares the name objects."""
    return _NAME_OF_CODE[np.asarray(codes, np.int64) + 1]


def split_by_quantile(difficulty: np.ndarray, eligible: np.ndarray, easy_fraction: float,
                      hard_fraction: float) -> np.ndarray:
    """Object array of ``easy`` / ``medium`` / ``hard`` (None where not eligible or NaN): the names of
    :func:`split_codes_by_quantile`."""
    return split_names(split_codes_by_quantile(difficulty, eligible, easy_fraction, hard_fraction))
