"""DDL: hand-computed pieces, equality with a direct transcription of the reference, gradcheck."""

import math

import pytest
import torch
import torch.nn.functional as F

from fr_train.objective.losses import DistributionDistillationLoss, ddl_loss
from fr_train.objective.losses.functional import (
    histogram_nodes,
    kl_divergence,
    positive_pair_cosines,
    soft_histogram,
    upper_triangle_max,
)


def _reference_ddl(neg_feats, pos_a, pos_b):
    """The TFace computation transcribed step by step from docs/losses.md (independent of the module)."""
    nodes = torch.arange(0, 1.0, 0.001, dtype=neg_feats[0].dtype).view(1, -1)

    def hist(s):
        h = torch.exp(-0.5 * ((s.view(-1, 1) - nodes) / 0.1) ** 2).sum(dim=0, keepdim=True)
        return h / h.sum()

    negs, poss = [], []
    for x in neg_feats:
        xn = F.normalize(x, dim=1)
        negs.append(torch.triu(xn @ xn.t(), diagonal=1).max(dim=1)[0])
    for a, b in zip(pos_a, pos_b):
        p = (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(dim=1)
        poss.append(torch.masked_select(p, p > 0.0))
    kl = lambda p, q: F.kl_div(torch.log(q + 1e-9), p + 1e-9, reduction="batchmean")  # noqa: E731
    pos_kl = sum(kl(hist(poss[0]), hist(p)) for p in poss[1:])
    neg_kl = sum(kl(hist(negs[0]), hist(n)) for n in negs[1:])
    order = sum(n.mean() - p.mean() for n in negs for p in poss)
    return 0.1 * pos_kl + 0.02 * neg_kl + 0.5 * order


def _branches(dtype=torch.float32, n=12, m=8, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    neg = [torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True) for _ in range(2)]
    base = torch.randn(2, m, d, generator=g, dtype=dtype)
    noise = (0.6, 1.5)  # the hard (student) pairs are noisier
    pos_a = [base[k].clone().requires_grad_() for k in range(2)]
    pos_b = [(base[k] + noise[k] * torch.randn(m, d, generator=g, dtype=dtype)).requires_grad_()
             for k in range(2)]
    return neg, pos_a, pos_b


def test_nodes_are_the_reference_grid():
    nodes = histogram_nodes(1000, dtype=torch.float64, device=torch.device("cpu"))
    assert nodes.shape == (1000,)
    assert torch.allclose(nodes, torch.arange(0, 1.0, 0.001, dtype=torch.float64), atol=1e-12)
    assert nodes[0] == 0.0 and nodes[-1] == pytest.approx(0.999)


def test_histogram_of_a_single_similarity_by_hand():
    # nodes 0, .25, .5, .75; sigma .5; s = .25 -> distances .25, 0, .25, .5
    h = soft_histogram(torch.tensor([0.25], dtype=torch.float64), num_bins=4, sigma=0.5)
    w = torch.tensor([math.exp(-0.125), 1.0, math.exp(-0.125), math.exp(-0.5)], dtype=torch.float64)
    assert torch.allclose(h, w / w.sum(), atol=1e-12)
    assert h.sum() == pytest.approx(1.0)


def test_histogram_peaks_at_the_similarity():
    h = soft_histogram(torch.tensor([0.5]), num_bins=1000, sigma=0.1)
    assert int(h.argmax()) == 500
    assert torch.allclose(h[400], h[600], rtol=1e-4)  # symmetric kernel


def test_histogram_rejects_empty_input():
    with pytest.raises(ValueError, match="empty"):
        soft_histogram(torch.empty(0), 10, 0.1)


def test_kl_of_identical_distributions_is_zero_and_of_known_pair_is_log2():
    p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    assert kl_divergence(p, p) == 0.0
    f64 = torch.float64
    kl = kl_divergence(torch.tensor([1.0, 0.0], dtype=f64), torch.tensor([0.5, 0.5], dtype=f64))
    e = 1e-9  # the reference's epsilon on both sides
    exact = (1 + e) * (math.log(1 + e) - math.log(0.5 + e)) + e * (math.log(e) - math.log(0.5 + e))
    assert float(kl) == pytest.approx(exact, abs=1e-12)
    assert float(kl) == pytest.approx(math.log(2.0), abs=1e-7)


def test_negatives_are_upper_triangle_row_maxima_clipped_at_zero():
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    # cos: (0,1)=.7071, (0,2)=-1, (1,2)=-.7071; lower triangle and diagonal count as 0
    assert torch.allclose(upper_triangle_max(x), torch.tensor([math.sqrt(0.5), 0.0, 0.0]), atol=1e-6)


def test_positives_drop_pairs_at_or_below_zero():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    assert torch.allclose(positive_pair_cosines(a, b), torch.tensor([math.sqrt(0.5)]))


def test_order_term_sums_every_negative_positive_branch_pair():
    pos = [torch.tensor([0.8, 0.6]), torch.tensor([0.5])]
    neg = [torch.tensor([0.1, 0.3]), torch.tensor([0.2])]
    out = ddl_loss(pos, neg, pos_kl_weight=0.0, neg_kl_weight=0.0)
    # (.2-.7) + (.2-.5) + (.2-.7) + (.2-.5) = -1.6, weight .5
    assert float(out.parts["order"]) == pytest.approx(-1.6)
    assert float(out.loss) == pytest.approx(-0.8)
    swapped = ddl_loss(neg, pos, pos_kl_weight=0.0, neg_kl_weight=0.0)
    assert float(swapped.parts["order"]) == pytest.approx(1.6)  # negatives above positives: positive penalty


def test_identical_branches_have_zero_kl():
    s = torch.tensor([0.1, 0.4, 0.7])
    out = ddl_loss([s, s.clone()], [s * 0.5, s * 0.5])
    assert float(out.parts["pos_kl"]) == 0.0 and float(out.parts["neg_kl"]) == 0.0


def test_module_matches_reference_value_and_gradients():
    neg, pos_a, pos_b = _branches(torch.float64)
    ours = DistributionDistillationLoss()(neg, pos_a, pos_b).loss
    leaves = [*neg, *pos_a, *pos_b]
    g_ours = torch.autograd.grad(ours, leaves)
    ref = _reference_ddl(neg, pos_a, pos_b)
    g_ref = torch.autograd.grad(ref, leaves)
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), abs=1e-10)
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, atol=1e-10)


def test_teacher_gets_kl_gradient_by_default_and_none_when_detached():
    neg, pos_a, pos_b = _branches()
    kw = dict(order_weight=0.0)
    loss = DistributionDistillationLoss(**kw)(neg, pos_a, pos_b).loss
    grads = torch.autograd.grad(loss, [neg[0], pos_a[0], neg[1]])
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0 and grads[2].abs().sum() > 0
    loss = DistributionDistillationLoss(detach_teacher=True, **kw)(neg, pos_a, pos_b).loss
    grads = torch.autograd.grad(loss, [neg[0], pos_a[0], neg[1]], allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads[:2])
    assert grads[2].abs().sum() > 0


def test_parts_combine_to_the_total():
    neg, pos_a, pos_b = _branches()
    out = DistributionDistillationLoss()(neg, pos_a, pos_b)
    p = out.parts
    weighted = 0.1 * p["pos_kl"] + 0.02 * p["neg_kl"] + 0.5 * p["order"]
    assert float(out.loss.detach()) == pytest.approx(float(weighted), abs=1e-6)
    assert len(out.details["neg_sims"]) == 2 and out.details["neg_sims"][0].shape == (12,)


def test_gradcheck_float64():
    neg, pos_a, pos_b = _branches(torch.float64, n=4, m=3, d=3, seed=3)
    loss = DistributionDistillationLoss(num_bins=20, sigma=0.2)

    def fn(*t):
        return loss(list(t[0:2]), list(t[2:4]), list(t[4:6])).loss

    assert torch.autograd.gradcheck(fn, (*neg, *pos_a, *pos_b), eps=1e-6, atol=1e-5)


def test_rejects_mismatched_branches_and_empty_negatives():
    neg, pos_a, pos_b = _branches()
    with pytest.raises(ValueError, match="length"):
        DistributionDistillationLoss()(neg, pos_a[:1], pos_b)
    with pytest.raises(ValueError, match="negative branch 1"):
        ddl_loss([torch.ones(2), torch.ones(2)], [torch.ones(2), torch.empty(0)])


def test_an_empty_positive_branch_is_left_out_not_an_error():
    # every pair of the student branch at cosine <= 0 (a weak backbone on hard pairs): no student positive
    # KL and no order pairs with that branch; the rest of the loss is unchanged
    pos = [torch.tensor([0.8, 0.6]), torch.empty(0)]
    neg = [torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.4])]
    out = ddl_loss(pos, neg, num_bins=50, sigma=0.1)
    neg_kl = kl_divergence(soft_histogram(neg[0], 50, 0.1), soft_histogram(neg[1], 50, 0.1))
    order = (0.2 + 0.3) - 2 * 0.7  # one positive branch: sum_i mean(neg_i) - 2 * mean(pos_0)
    assert float(out.parts["pos_kl"]) == 0.0 and float(out.parts["empty_pos"]) == 1.0
    assert float(out.loss) == pytest.approx(0.02 * float(neg_kl) + 0.5 * order, rel=1e-6)
    none = ddl_loss([torch.empty(0), torch.empty(0)], neg, num_bins=50, sigma=0.1)
    assert float(none.parts["order"]) == 0.0 and float(none.parts["empty_pos"]) == 2.0
    neg_a, pos_a, pos_b = _branches()
    opposite = [pos_b[0], -pos_a[1]]  # the student's pairs point apart
    result = DistributionDistillationLoss()(neg_a, pos_a, opposite)
    assert float(result.parts["empty_pos"]) == 1.0 and torch.isfinite(result.loss)
