"""EKD: thresholds, soft rank and EMA by hand; the loss against a loop transcription of docs/losses.md."""

import math

import pytest
import torch
import torch.nn.functional as F

from fr_train.objective.losses import EKDLoss
from fr_train.objective.losses.ekd import fpr_thresholds, soft_rank


def _batch(seed=0, n=12, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) // 3  # 4 identities x 3 images
    centers = torch.randn(n // 3, 6, generator=g, dtype=dtype)
    student = (centers[labels] + 0.8 * torch.randn(n, 6, generator=g, dtype=dtype)).requires_grad_()
    proj = torch.randn(6, 5, generator=g, dtype=dtype)
    teacher = centers[labels] @ proj + 0.3 * torch.randn(n, 5, generator=g, dtype=dtype)
    return student, teacher, labels


def _loop_reference(student, teacher, labels, top_k, t=0.01):
    """docs/losses.md (EKD), pair by pair, with momentum 1 (thresholds = this batch's)."""
    s, tt = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
    pos, neg = [], []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            pair = (s[i] @ s[j], tt[i] @ tt[j])
            (pos if labels[i] == labels[j] else neg).append(pair)

    def rank(x, thr):
        return sum(torch.sigmoid(torch.clamp((x - th) / t, -50, 50)) for th in thr)

    def thresholds(values):
        ordered = sorted((float(v.detach()) for v in values), reverse=True)
        return [ordered[len(ordered) // a] for a in (10, 100, 1000, 10000, 100000, 1000000)]

    s_thr, t_thr = thresholds(p[0] for p in neg), thresholds(p[1] for p in neg)
    neg = sorted(neg, key=lambda p: -float(p[0].detach()))[:top_k]
    def mse(pairs, a, b):
        return sum((rank(p[0], a) - rank(p[1], b)) ** 2 for p in pairs) / len(pairs)
    return 0.02 * mse(pos, s_thr, t_thr) + 0.01 * mse(neg, s_thr, t_thr)


def test_thresholds_index_the_sorted_negatives():
    sims = torch.arange(100, dtype=torch.float64).flip(0) / 100  # 0.99, 0.98, ... 0.00 (any order works)
    sims = sims[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    thr = fpr_thresholds(sims, torch.tensor([10, 100, 1000]))
    # descending order, index len // divisor = 10, 1, 0
    assert thr.tolist() == pytest.approx([0.89, 0.98, 0.99])


def test_soft_rank_counts_exceeded_thresholds():
    thr = torch.tensor([0.2, 0.5, 0.8])
    r = soft_rank(torch.tensor([1.0, -1.0, 0.5]), thr, 0.01)
    assert r[0] == pytest.approx(3.0) and r[1] == pytest.approx(0.0, abs=1e-12)
    # sigmoid(30) + sigmoid(0) + sigmoid(-30)
    assert r[2] == pytest.approx(1.0 + 0.5 + 1.0 / (1.0 + math.exp(30.0)), abs=1e-6)


def test_running_thresholds_start_at_zero_and_follow_the_ema():
    student, teacher, labels = _batch()
    loss = EKDLoss(momentum=0.01)
    loss(student, teacher, labels)
    s = F.normalize(student.detach(), dim=1)
    i, j = torch.triu_indices(12, 12, 1)
    neg = (s @ s.T)[i, j][labels[i] != labels[j]]  # 54 negatives -> index 5 at 1e-1, 0 beyond
    batch_thr = fpr_thresholds(neg, torch.tensor([10, 100, 1000, 10000, 100000, 1000000]))
    assert torch.allclose(loss.student_thresholds, 0.01 * batch_thr.float(), atol=1e-7)
    loss(student, teacher, labels)
    assert torch.allclose(loss.student_thresholds, (0.01 + 0.99 * 0.01) * batch_thr.float(), atol=1e-7)
    loss.eval()
    before = loss.student_thresholds.clone()
    loss(student, teacher, labels)
    assert torch.equal(loss.student_thresholds, before)  # eval mode uses, but does not update, them


@pytest.mark.parametrize("top_k", [2000, 5])
def test_loss_equals_loop_transcription(top_k):
    student, teacher, labels = _batch(seed=1)
    loss = EKDLoss(momentum=1.0, top_k=top_k).double()  # momentum 1: thresholds = this batch's
    out = loss(student, teacher, labels)
    ref = _loop_reference(student, teacher, labels, top_k)
    assert float(out.loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-10)
    assert float(out.loss.detach()) > 0
    assert float(out.loss.detach()) == pytest.approx(float(0.02 * out.parts["pos"] + 0.01 * out.parts["neg"]))


def test_identical_student_and_teacher_give_zero_loss():
    student, _, labels = _batch()
    out = EKDLoss()(student, student.detach().clone(), labels)
    assert float(out.loss.detach()) == 0.0


def test_teacher_gets_no_gradient_and_student_does():
    student, teacher, labels = _batch()
    teacher = teacher.clone().requires_grad_()
    out = EKDLoss(momentum=1.0)(student, teacher, labels)
    g_s, g_t = torch.autograd.grad(out.loss, [student, teacher], allow_unused=True)
    assert g_t is None and g_s.abs().sum() > 0


def test_batch_without_positives_or_negatives_is_finite():
    student, teacher, _ = _batch()
    distinct = torch.arange(12)
    assert float(EKDLoss()(student, teacher, distinct).parts["pos"]) == 0.0
    same = torch.zeros(12, dtype=torch.long)
    loss = EKDLoss()
    out = loss(student, teacher, same)
    assert float(out.parts["neg"]) == 0.0 and torch.equal(loss.student_thresholds, torch.zeros(6))


def test_gradcheck_float64():
    student, teacher, labels = _batch(seed=2, n=9)
    loss = EKDLoss(momentum=1.0, temperature=0.2, top_k=10).double()
    loss(student, teacher, labels)  # set thresholds, then freeze them for gradcheck
    loss.eval()
    assert torch.autograd.gradcheck(lambda s: loss(s, teacher, labels).loss, (student,))


def test_rejects_mismatched_lengths():
    student, teacher, labels = _batch()
    with pytest.raises(ValueError, match="differ in length"):
        EKDLoss()(student, teacher[:5], labels)
