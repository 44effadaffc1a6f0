"""Shared math of the hard-sample losses: cosine similarities, soft histograms, KL, log-domain Sinkhorn.

Everything here is a pure function of tensors (no state, no process group), differentiable with
autograd, and works in float32 or float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

KL_EPS = 1e-9
"""Additive epsilon of the DDL reference KL (applied to both histograms)."""


@dataclass(frozen=True)
class LossOutput:
    """What every loss in :mod:`fr_train.objective.losses` returns.

    Attributes:
        loss: The scalar to back-propagate (already weighted by the loss's own internal weights).
        parts: Named scalar components for logging (detached tensors; ``loss`` is their weighted sum
            where that applies).
        details: Non-scalar diagnostics (e.g. similarity vectors for histograms); never needed to train.
    """

    loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def cosine_matrix(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarities between the rows of ``x`` (..., n, d) and ``y`` (..., m, d) (default ``x``)."""
    xn = F.normalize(x, dim=-1)
    yn = xn if y is None else F.normalize(y, dim=-1)
    return xn @ yn.transpose(-1, -2)


def upper_triangle_max(features: torch.Tensor) -> torch.Tensor:
    """DDL negatives of one branch: per row, the max over the strict upper triangle of its cosine matrix.

    Follows the reference exactly: entries on and below the diagonal are *zero* (not excluded), so each
    value is ``max(0, max_{j>i} cos_ij)`` and the last row is always 0.

    Args:
        features: (N, D) raw features, one image per identity (all off-diagonal pairs are negatives).

    Returns:
        (N,) similarities.
    """
    return torch.triu(cosine_matrix(features), diagonal=1).max(dim=1).values


def positive_pair_cosines(first: torch.Tensor, second: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """DDL positives of one branch: cosines of row-aligned pairs, keeping only those ``> threshold``."""
    if first.shape != second.shape:
        raise ValueError(
            f"positive pair tensors differ in shape: {tuple(first.shape)} vs {tuple(second.shape)}"
        )
    sims = F.cosine_similarity(first, second, dim=1, eps=1e-12)
    return sims[sims > threshold]


def histogram_nodes(num_bins: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Nodes ``0, 1/num_bins, ..., (num_bins-1)/num_bins`` (1000 bins: 0.000 ... 0.999, as the reference)."""
    return torch.arange(num_bins, dtype=torch.float64, device=device).div(num_bins).to(dtype)


def soft_histogram(sims: torch.Tensor, num_bins: int, sigma: float) -> torch.Tensor:
    """Gaussian-kernel histogram of similarities on the nodes of :func:`histogram_nodes`, summing to 1.

    ``h_r = sum_i exp(-((s_i - t_r) / sigma)^2 / 2)`` normalised over r. Mass of similarities far outside
    [0, 1) is truncated by the node range, as in the reference.

    Raises:
        ValueError: ``sims`` is empty (the distribution is undefined).
    """
    if sims.numel() == 0:
        raise ValueError("cannot build a similarity histogram from an empty set of similarities")
    nodes = histogram_nodes(num_bins, dtype=sims.dtype, device=sims.device)
    weights = torch.exp(-0.5 * ((sims.reshape(-1, 1) - nodes) / sigma) ** 2).sum(dim=0)
    return weights / weights.sum()


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = KL_EPS) -> torch.Tensor:
    """``KL(p || q) = sum_r (p_r + eps) (log(p_r + eps) - log(q_r + eps))`` (the reference's kl_div form)."""
    pe = p + eps
    return (pe * (torch.log(pe) - torch.log(q + eps))).sum()


def log_sinkhorn_plan(
    cost: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, eps: float, num_iters: int
) -> torch.Tensor:
    """Entropic OT plan by log-domain Sinkhorn, batched over leading dimensions.

    Solves ``min_P <P, C> - eps * H(P)`` with marginals ``a`` (rows) and ``b`` (columns) by alternating
    updates of the scaled dual potentials ``u = f/eps``, ``v = g/eps``; the row update comes last, so the
    row marginals of the returned plan are exact. Padded entries are expressed by ``-inf`` log-weights and
    receive zero mass (every problem needs at least one finite weight on each side).

    Args:
        cost: (..., n, m) cost matrices.
        log_a: (..., n) log row weights (each row set sums to 1).
        log_b: (..., m) log column weights.
        eps: Entropic regularisation (> 0).
        num_iters: Number of (column, row) update pairs (unrolled, so autograd differentiates through).

    Returns:
        (..., n, m) transport plans.
    """
    if eps <= 0 or num_iters < 1:
        raise ValueError(f"need eps > 0 and num_iters >= 1, got eps={eps}, num_iters={num_iters}")
    kernel = -cost / eps
    u = log_a  # POT's start (u = a); padded rows are -inf from the first update on
    v = log_b
    for _ in range(num_iters):
        v = log_b - torch.logsumexp(kernel + u.unsqueeze(-1), dim=-2)
        u = log_a - torch.logsumexp(kernel + v.unsqueeze(-2), dim=-1)
    return torch.exp(kernel + u.unsqueeze(-1) + v.unsqueeze(-2))


def uniform_log_weights(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Log of uniform weights over the True entries of ``mask`` (..., n); ``-inf`` where False."""
    counts = mask.sum(dim=-1, keepdim=True).clamp(min=1).to(dtype)
    log_w = (-torch.log(counts)).expand(mask.shape)
    return torch.where(mask, log_w, torch.full_like(log_w, float("-inf")))


def transport_cost(cost: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
    """``<P, C>`` per problem (padded entries hold zero mass; their cost must be finite)."""
    return (plan * cost).sum(dim=(-1, -2))
