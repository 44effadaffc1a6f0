"""Scoring backbones on verification packs: pair cosines of flip-sum embeddings, and the metrics.

A pack is decoded once and every backbone that needs it is scored on it (decoding costs about as much as
a tiny backbone's forward pass). The per-pair scores are kept (``.npz``, no pickles) so that the report
can draw ROC curves and bootstrap intervals without running a model again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fr_data.folders.training_run_folder import config_path
from fr_data.formats.verification import VerificationPack, decode_pack_uint8, load_bin
from fr_data.io.atomic import atomic_path
from fr_data.io.config import from_dict, load_yaml_with_bases
from fr_data.io.errors import ConfigError, DataError
from fr_train.checkpoints.weights import load_weights
from fr_train.evaluation.attack import PairAttack, attack_pairs
from fr_train.evaluation.verification import flip_sum_embeddings, tpr_at_fpr, verify_distances
from fr_train.models import get_model
from fr_train.models.config import ModelConfig

__all__ = ["METRIC_FPRS", "PackScores", "decode_uint8", "score_images", "attack_pack", "pack_metrics",
           "save_scores", "load_scores", "load_backbone"]

#: Results column -> FPR of the TPR it holds.
METRIC_FPRS = {"tpr_at_fpr_1e_2": 1e-2, "tpr_at_fpr_1e_3": 1e-3}
CHUNK = 512


@dataclass
class PackScores:
    """Cosine of every pair of a pack (flip-sum embeddings) and whether the pair is genuine."""

    scores: np.ndarray
    issame: np.ndarray


def decode_uint8(pack: VerificationPack) -> torch.Tensor:
    """The pack's images as ``(2P, 3, 112, 112)`` uint8 (a quarter of the float tensor's memory)."""
    return torch.from_numpy(decode_pack_uint8(pack)).permute(0, 3, 1, 2)


def attack_pack(pack: str, eps: int) -> str:
    """Results name of ``pack`` attacked at ``eps`` / 255: ``synth_easy@pgd4``."""
    return f"{pack}@pgd{eps}"


def score_images(model: nn.Module, images: torch.Tensor, batch_size: int = 128, *,
                 attack: PairAttack | None = None, issame: np.ndarray | None = None) -> np.ndarray:
    """Cosine of pairs ``(2i, 2i + 1)`` of uint8 ``images`` under ``model`` (flip-sum embeddings); with
    ``attack``, the first image of every pair attacked first (:func:`fr_train.evaluation.attack.attack_pairs`,
    ``issame`` saying which pairs are genuine), chunk by chunk like the clean scores (at eps 0 they are the
    clean scores exactly)."""
    parts = []
    generator = torch.Generator().manual_seed(attack.seed) if attack is not None else None
    for start in range(0, len(images), CHUNK):
        chunk = images[start:start + CHUNK].float().div_(255).sub_(0.5).div_(0.5).contiguous()
        if attack is not None:
            chunk = attack_pairs(model, chunk, issame[start // 2:(start + len(chunk)) // 2], attack, generator)
        parts.append(flip_sum_embeddings(model, chunk, batch_size))
    emb = np.concatenate(parts).astype(np.float64)
    return np.sum(emb[0::2] * emb[1::2], axis=1)


def pack_metrics(pack: PackScores, folds: int = 10) -> dict[str, float]:
    """InsightFace 10-fold accuracy (on ``2 - 2 cos``, the squared distance of unit embeddings) and TPR at
    each FPR of :data:`METRIC_FPRS` (NaN where the pack has too few impostor pairs)."""
    folds = min(folds, len(pack.scores))
    out = {"accuracy": verify_distances(2.0 - 2.0 * pack.scores, pack.issame, folds).accuracy}
    roc = tpr_at_fpr(pack.scores, pack.issame, list(METRIC_FPRS.values()))
    out.update({name: float(tpr) for name, tpr in zip(METRIC_FPRS, roc.tprs)})
    return out


def save_scores(path: str | os.PathLike, packs: Mapping[str, PackScores]) -> None:
    """Write ``{pack: scores}`` as one ``.npz`` (arrays ``<pack>.scores`` and ``<pack>.issame``), atomically."""
    arrays = {}
    for name, pack in packs.items():
        arrays[f"{name}.scores"], arrays[f"{name}.issame"] = pack.scores, pack.issame
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_scores(path: str | os.PathLike) -> dict[str, PackScores]:
    """Read a file written by :func:`save_scores` (no pickles).

    Raises:
        DataError: naming the file when it is missing or malformed.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            names = sorted({key.rsplit(".", 1)[0] for key in data.files})
            return {n: PackScores(data[f"{n}.scores"], data[f"{n}.issame"].astype(bool)) for n in names}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(path, "", f"not a pack-scores file: {exc}") from None


def load_backbone(weights: str | os.PathLike, device: torch.device | str = "cpu") -> nn.Module:
    """A trained backbone from its ``model.pt`` and the ``model:`` section of the training ``config.yaml``
    saved beside it (only that section: a run saved before a training key moved still loads).

    Raises:
        ConfigError: naming the config file when its ``model:`` section is missing or invalid.
    """
    path = config_path(Path(weights).parent)
    try:
        spec = from_dict(ModelConfig, load_yaml_with_bases(path).get("model", {}), "model")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    model = get_model(spec.name, embedding_size=spec.embedding_size, **spec.options)
    return load_weights(model, weights).to(device).eval()


def load_pack(path: str | os.PathLike) -> VerificationPack:
    """A ``.bin`` pack (restricted unpickler), or a DataError naming it when it is missing."""
    if not Path(path).is_file():
        raise DataError(path, "", "verification pack not found (did the packs stage finish?)")
    return load_bin(path)
