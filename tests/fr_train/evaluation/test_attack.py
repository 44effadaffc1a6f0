"""Verification under attack: a linear embedding whose optimal attack is known in closed form, and eps 0
scoring exactly like the clean protocol."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fr_train.adversarial.pgd import PIXEL_SCALE
from fr_train.evaluation.attack import PairAttack, attack_pairs, scores_under_attack, verify_under_attack
from fr_train.evaluation.verification import flip_sum_embeddings, tpr_at_fpr
from fr_train.models import get_model


class LinearEmbedding(nn.Module):
    """``f(x) = (w . x, 1)``: the flip-sum is ``(m . x, 2)`` with ``m = w + flip(w)``, and its cosine with a
    target ``(t1, t2)`` of large ``t1 / t2`` rises with ``m . x`` below the target's own ``m . b``: the optimal
    L-inf attack is the corner ``x -+ radius * sign(m)`` (genuine: down, impostor: up)."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([(x * self.w).sum(dim=(1, 2, 3)), torch.ones(len(x))], dim=1)


def _linear_case():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 3, 4, 4, generator=g)
    m = w + torch.flip(w, dims=[3])
    a = (torch.rand(2, 3, 4, 4, generator=g) - 0.5) * 0.6  # |a| <= 0.3
    b = 0.9 * torch.sign(m).expand(2, -1, -1, -1)  # m . b = 0.9 |m|_1: far above any m . a'
    images = torch.stack([a[0], b[0], a[1], b[1]])
    return LinearEmbedding(w), m, a, images


def test_pgd_reaches_the_closed_form_attack_of_a_linear_embedding():
    model, m, a, images = _linear_case()
    eps = 8 / 255
    issame = np.array([True, False])
    got = attack_pairs(model, images, issame, PairAttack(eps, steps=10, step_ratio=0.25))
    radius = PIXEL_SCALE * eps
    assert torch.allclose(got[0], a[0] - radius * torch.sign(m[0]), atol=1e-5)  # genuine: apart
    assert torch.allclose(got[2], a[1] + radius * torch.sign(m[0]), atol=1e-5)  # impostor: together
    assert torch.equal(got[1], images[1]) and torch.equal(got[3], images[3])  # second images stay clean
    clean = scores_under_attack(model, images, issame, PairAttack(0.0))
    attacked = scores_under_attack(model, images, issame, PairAttack(eps))
    assert attacked[0] < clean[0] and attacked[1] > clean[1]


def test_eps_zero_scores_equal_the_clean_scores_exactly():
    torch.manual_seed(0)
    model = get_model("tiny", embedding_size=8).eval()
    images = torch.rand(8, 3, 112, 112) * 2 - 1
    issame = np.array([True, False, True, False])
    emb = flip_sum_embeddings(model, images, 64).astype(np.float64)
    clean = np.sum(emb[0::2] * emb[1::2], axis=1)
    assert np.array_equal(scores_under_attack(model, images, issame, PairAttack(0.0)), clean)
    tprs = verify_under_attack(model, images, issame, eps=(0.0, 4 / 255), fpr=0.5, steps=2)
    assert tprs[0.0] == float(tpr_at_fpr(clean, issame, [0.5]).tprs[0])
    assert set(tprs) == {0.0, 4 / 255}
