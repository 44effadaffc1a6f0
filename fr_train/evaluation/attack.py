"""Verification under attack: TPR@FPR of a pair pack when one image of every pair is attacked.

For each pair ``(a, b)`` (images ``2i`` and ``2i + 1`` of the pack), ``a`` is replaced by its L-inf PGD
example (:func:`fr_train.adversarial.pgd.pgd_linf`: random start, ``steps`` signed-gradient steps of
``step_ratio * eps``, kept within the eps-ball and the valid pixel range) that pushes a genuine pair apart
(minimises the cosine) and an impostor pair together (maximises it); ``b`` stays clean. The attacked
quantity is the cosine of the **flip-sum** embeddings, ``normalise(f(a') + f(flip(a')))`` against
``normalise(f(b) + f(flip(b)))``: the score the packs are judged on (:func:`fr_train.evaluation.
verification.flip_sum_embeddings`). An attack on the plain embedding would be scored through another
function than the one it optimised and overstate robustness; attacking the flip-sum costs two backbone passes
per step. The model runs in eval mode (BatchNorm running statistics; a dual-BN backbone with its predicted
fusion weight, the predictor included in the gradient: a white-box, adaptive attack).

With ``eps = 0`` the images are returned unchanged (the same tensor), so the scores equal the clean ones
exactly. Attacked images are floats (not re-quantised to 8 bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fr_train.adversarial.pgd import eval_mode, pgd_linf
from fr_train.evaluation.verification import flip_sum_embeddings, tpr_at_fpr

__all__ = ["ATTACK_EPS", "PairAttack", "flip_sum", "attack_pairs", "scores_under_attack", "verify_under_attack"]

#: The attack strengths of the experiment, in 1/255 pixel steps.
ATTACK_EPS = (0, 2, 4, 8)


@dataclass(frozen=True)
class PairAttack:
    """One attack setting.

    Attributes:
        eps: L-inf radius in pixel units of [0, 1] (e.g. ``4 / 255``).
        steps: PGD steps.
        step_ratio: step size as a fraction of ``eps``.
        seed: seeds the random starts.
        batch_size: pairs attacked at a time.
    """

    eps: float
    steps: int = 10
    step_ratio: float = 0.25
    seed: int = 0
    batch_size: int = 64


def flip_sum(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Differentiable L2-normalised ``f(x) + f(flip(x))``."""
    return F.normalize(model(images).float() + model(torch.flip(images, dims=[3])).float(), dim=1)


def attack_pairs(model: nn.Module, images: torch.Tensor, issame: torch.Tensor | np.ndarray, attack: PairAttack,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` (``(2n, 3, H, W)`` normalised, pairs ``(2i, 2i + 1)``) with the first image of every pair
    replaced by its PGD example (see the module docstring); ``images`` itself when ``eps`` is 0.

    Args:
        issame: ``(n,)`` whether pair ``i`` is genuine.
        generator: draws the random starts (None: one seeded by ``attack.seed``).
    """
    if attack.eps == 0:
        return images
    generator = generator if generator is not None else torch.Generator().manual_seed(attack.seed)
    device = next(model.parameters()).device
    genuine = torch.as_tensor(np.asarray(issame, dtype=bool), device=device)
    out = images.clone()
    with eval_mode(model):
        for start in range(0, len(genuine), attack.batch_size):
            rows = slice(start, start + attack.batch_size)
            first = images[2 * start:2 * (start + attack.batch_size):2].to(device)
            with torch.no_grad():
                target = flip_sum(model, images[2 * start + 1:2 * (start + attack.batch_size):2].to(device))
            sign = torch.where(genuine[rows], -1.0, 1.0)  # genuine: lower the cosine; impostor: raise it

            def loss(x: torch.Tensor, target=target, sign=sign) -> torch.Tensor:
                return sign * (flip_sum(model, x) * target).sum(dim=1)

            attacked = pgd_linf(loss, first, attack.eps, steps=attack.steps, step_ratio=attack.step_ratio,
                                generator=generator)
            out[2 * start:2 * (start + attack.batch_size):2] = attacked.to(out.device)
    return out


def scores_under_attack(model: nn.Module, images: torch.Tensor, issame: torch.Tensor | np.ndarray,
                        attack: PairAttack, batch_size: int = 64) -> np.ndarray:
    """Cosine of every pair's flip-sum embeddings after :func:`attack_pairs`."""
    emb = flip_sum_embeddings(model, attack_pairs(model, images, issame, attack), batch_size).astype(np.float64)
    return np.sum(emb[0::2] * emb[1::2], axis=1)


def verify_under_attack(model: nn.Module, images: torch.Tensor, issame: torch.Tensor | np.ndarray,
                        eps: Sequence[float] = tuple(e / 255 for e in ATTACK_EPS), fpr: float = 1e-2, *,
                        steps: int = 10, step_ratio: float = 0.25, seed: int = 0, batch_size: int = 64
                        ) -> dict[float, float]:
    """TPR at ``fpr`` of the pack ``(images, issame)`` under attack at each ``eps`` (pixel units): ``{eps:
    TPR}`` (NaN where the pack has too few impostor pairs for ``fpr``)."""
    out = {}
    for radius in eps:
        attack = PairAttack(float(radius), steps, step_ratio, seed, batch_size)
        scores = scores_under_attack(model, images, issame, attack, batch_size)
        out[float(radius)] = float(tpr_at_fpr(scores, np.asarray(issame, dtype=bool), [fpr]).tprs[0])
    return out
