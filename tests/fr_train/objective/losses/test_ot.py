"""OT loss: Sinkhorn cost against POT, a hand-solved case, batched/padded vs one-by-one, gradcheck."""

import math

import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F

from fr_train.objective.losses import OTLoss, sinkhorn_cost
from fr_train.objective.losses.ot import hard_anchor_mask, pad_groups


def _clouds(n, m, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x[torch.randint(0, n, (m,), generator=g)] + 0.7 * torch.randn(m, d, generator=g, dtype=torch.float64)
    return x, y


def _pot(x, y, eps, **kw):
    cost = (1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).T).numpy()
    a, b = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    return float(ot.sinkhorn2(a, b, cost, eps, **kw))


@pytest.mark.parametrize("n,m", [(1, 1), (2, 3), (4, 7), (8, 3), (16, 12)])
def test_sinkhorn_cost_equals_pot_default_call(n, m):
    x, y = _clouds(n, m, seed=n * 31 + m)
    ours = OTLoss(eps=0.1, num_iters=1000).sinkhorn_cost(x, y)
    assert float(ours) == pytest.approx(_pot(x, y, 0.1), abs=1e-5)


@pytest.mark.parametrize("n,m", [(3, 5), (5, 5), (12, 20)])
def test_sinkhorn_cost_equals_converged_pot_at_smaller_eps(n, m):
    x, y = _clouds(n, m, seed=n + m)
    ours = sinkhorn_cost(x, y, eps=0.05, num_iters=3000)
    assert float(ours) == pytest.approx(_pot(x, y, 0.05, numItermax=100000, stopThr=1e-13), abs=1e-5)


def test_sinkhorn_cost_on_orthonormal_points_by_hand():
    # C = 0 on the diagonal, 1 elsewhere; by symmetry P = K / sum(K), so
    # <P, C> = 2 e^{-1/eps} / (1 + 2 e^{-1/eps}) for three points.
    x = torch.eye(3, dtype=torch.float64)
    k = math.exp(-1.0 / 0.5)
    assert float(sinkhorn_cost(x, x, eps=0.5, num_iters=10)) == pytest.approx(2 * k / (1 + 2 * k), abs=1e-12)


def test_padded_batch_equals_separate_problems():
    sizes = [(2, 3), (4, 1), (1, 5)]
    clouds = [_clouds(n, m, seed=i) for i, (n, m) in enumerate(sizes)]
    xs, xmask = pad_groups(torch.cat([c[0] for c in clouds]), torch.tensor([0, 0, 1, 1, 1, 1, 2]), 3)
    ys, ymask = pad_groups(torch.cat([c[1] for c in clouds]), torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 2]), 3)
    batched = sinkhorn_cost(xs, ys, eps=0.1, num_iters=200, x_mask=xmask, y_mask=ymask)
    single = torch.stack([sinkhorn_cost(x, y, eps=0.1, num_iters=200) for x, y in clouds])
    assert torch.allclose(batched, single, atol=1e-12)


def test_pad_groups_layout():
    feats = torch.arange(5.0).view(5, 1)
    blocks, mask = pad_groups(feats, torch.tensor([1, 0, 1, 1, 0]), 3)
    assert blocks.shape == (3, 3, 1)
    assert blocks[0, :, 0].tolist() == [1.0, 4.0, 0.0] and blocks[1, :, 0].tolist() == [0.0, 2.0, 3.0]
    assert mask.tolist() == [[True, True, False], [True, True, True], [False, False, False]]


def test_hard_anchor_mask_by_hand():
    e = torch.tensor([[1.0, 0.0], [0.8, 0.6]])  # anchors of ids 0 and 1
    ref = torch.tensor([[0.6, -0.8], [0.8, 0.6]])  # references of ids 0 and 1
    ids = torch.tensor([0, 1])
    # anchor 0: hardest positive cos(e0, ref0) = .6, hardest negative cos(e0, e1) = .8 -> hard
    # anchor 1: hardest positive cos(e1, ref1) = 1, hardest negative cos(e1, e0) = .8 -> hard iff margin > .2
    assert hard_anchor_mask(e, ids, ref, ids, margin=0.1).tolist() == [True, False]
    assert hard_anchor_mask(e, ids, ref, ids, margin=0.25).tolist() == [True, True]
    # without a reference of its identity an anchor is never hard
    assert hard_anchor_mask(e, ids, ref[1:], ids[1:], margin=0.1).tolist() == [False, False]


def _loss_batch(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3])
    centers = torch.randn(4, 6, generator=g, dtype=dtype)
    emb = (centers[labels] + 0.9 * torch.randn(7, 6, generator=g, dtype=dtype)).requires_grad_()
    ref_labels = torch.tensor([0, 1, 1, 2, 3, 3])
    ref = centers[ref_labels] + 0.3 * torch.randn(6, 6, generator=g, dtype=dtype)
    return emb, labels, ref, ref_labels


def test_loss_is_mean_over_identity_groups_of_one_by_one_costs():
    emb, labels, ref, ref_labels = _loss_batch()
    loss = OTLoss(margin=0.5, eps=0.1, num_iters=100)
    out = loss(emb, labels, ref, ref_labels)
    hard = hard_anchor_mask(emb, labels, ref, ref_labels, 0.5)
    costs = [
        sinkhorn_cost(emb[hard & (labels == c)], ref[ref_labels == c], eps=0.1, num_iters=100)
        for c in torch.unique(labels[hard]).tolist()
    ]
    assert len(costs) >= 2 and int(out.parts["num_groups"]) == len(costs)
    assert int(out.parts["num_hard"]) == int(hard.sum())
    assert float(out.loss.detach()) == pytest.approx(float(torch.stack(costs).mean().detach()), abs=1e-12)


def test_no_hard_anchor_gives_attached_zero():
    emb, labels, ref, ref_labels = _loss_batch()
    out = OTLoss(margin=-5.0)(emb, labels, ref, ref_labels)
    assert float(out.loss.detach()) == 0.0 and int(out.parts["num_groups"]) == 0
    out.loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


def test_reference_is_detached_by_default_and_optionally_trained():
    emb, labels, ref, ref_labels = _loss_batch()
    ref = ref.clone().requires_grad_()
    out = OTLoss(margin=0.5)(emb, labels, ref, ref_labels)
    assert torch.autograd.grad(out.loss, ref, allow_unused=True)[0] is None
    out = OTLoss(margin=0.5, detach_reference=False)(emb, labels, ref, ref_labels)
    assert torch.autograd.grad(out.loss, ref)[0].abs().sum() > 0


def test_row_aligned_reference_and_label_mismatch_errors():
    emb, labels, ref, ref_labels = _loss_batch()
    aligned = emb.detach() + 0.1
    assert torch.isfinite(OTLoss(margin=0.5)(emb, labels, aligned).loss)
    with pytest.raises(ValueError, match="row-aligned"):
        OTLoss()(emb, labels, ref)
    with pytest.raises(ValueError, match="labels"):
        OTLoss()(emb, labels, ref, ref_labels[:3])


def test_gradcheck_sinkhorn_cost_float64():
    x, y = _clouds(3, 4, d=3, seed=5)
    x.requires_grad_(), y.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: sinkhorn_cost(a, b, eps=0.1, num_iters=20), (x, y))


def test_gradcheck_loss_float64_with_padding():
    emb, labels, ref, ref_labels = _loss_batch(seed=1)
    loss = OTLoss(margin=0.5, eps=0.1, num_iters=20)
    assert int(loss(emb, labels, ref, ref_labels).parts["num_groups"]) >= 2  # groups of unequal size: padding
    assert torch.autograd.gradcheck(lambda e: loss(e, labels, ref, ref_labels).loss, (emb,))
