"""Margin heads: hand-computed logits, gradchecks, CurricularFace's t, CIFP against a numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

from fr_data.io.errors import ConfigError
from fr_train.objective.heads import CIFP, HEADS, ArcFace, CosFace, CurricularFace, build_head, cosine_logits


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def _head_2d(cls, class_angles: list[float], **kw):
    """A head in 2-D whose class centres point at the given angles (degrees)."""
    head = cls(2, len(class_angles), **kw).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor([_unit(a) for a in class_angles], dtype=torch.float64))
    return head


def test_arcface_logit_for_known_angle():
    head = _head_2d(ArcFace, [0.0, 90.0], s=2.0, m=0.5)
    emb = torch.tensor([_unit(60.0)], dtype=torch.float64)
    logits = head(emb, torch.tensor([0]))
    theta = math.radians(60.0)
    assert logits[0, 0].item() == pytest.approx(2.0 * math.cos(theta + 0.5), abs=1e-12)
    assert logits[0, 1].item() == pytest.approx(2.0 * math.cos(math.radians(30.0)), abs=1e-12)


def test_arcface_falls_back_linearly_when_theta_plus_m_exceeds_pi():
    head = _head_2d(ArcFace, [0.0, 90.0], s=1.0, m=0.5)
    emb = torch.tensor([_unit(170.0)], dtype=torch.float64)  # 170 deg + 28.6 deg > 180 deg
    logit = head(emb, torch.tensor([0]))[0, 0].item()
    expected = math.cos(math.radians(170.0)) - 0.5 * math.sin(math.pi - 0.5)
    assert logit == pytest.approx(expected, abs=1e-12)
    assert logit < math.cos(math.radians(170.0))  # the margin still lowers the target


def test_cosface_logit():
    head = _head_2d(CosFace, [0.0, 90.0], s=3.0, m=0.4)
    logits = head(torch.tensor([_unit(60.0)], dtype=torch.float64), torch.tensor([1]))
    assert logits[0, 0].item() == pytest.approx(3.0 * 0.5, abs=1e-12)
    assert logits[0, 1].item() == pytest.approx(3.0 * (math.cos(math.radians(30.0)) - 0.4), abs=1e-12)


def test_rows_labelled_minus_one_get_no_margin():
    for cls in (ArcFace, CosFace):
        head = _head_2d(cls, [0.0, 45.0, 90.0], s=2.0)
        cos = cosine_logits(torch.tensor([_unit(10.0), _unit(50.0)], dtype=torch.float64), head.weight)
        out = head.margin(cos, torch.tensor([-1, 1]))
        assert torch.allclose(out[0], 2.0 * cos[0])
        assert torch.allclose(out[1, [0, 2]], 2.0 * cos[1, [0, 2]])
        assert not torch.isclose(out[1, 1], 2.0 * cos[1, 1])


def test_curricularface_updates_t_before_use_and_modulates_hard_negatives():
    s, m = 2.0, 0.5
    head = _head_2d(CurricularFace, [0.0, 40.0, 90.0], s=s, m=m, momentum=0.01)
    emb = torch.tensor([_unit(30.0)], dtype=torch.float64)
    cos_y, cos_hard, cos_easy = (math.cos(math.radians(a)) for a in (30.0, 10.0, 60.0))
    assert cos_hard > math.cos(math.radians(30.0) + m) > cos_easy  # class 1 hard, class 2 easy
    logits = head(emb, torch.tensor([0]))
    t1 = 0.01 * cos_y  # t starts at 0 and is updated before it is used
    assert head.t.item() == pytest.approx(t1)
    assert logits[0, 0].item() == pytest.approx(s * math.cos(math.radians(30.0) + m))
    assert logits[0, 1].item() == pytest.approx(s * cos_hard * (t1 + cos_hard))
    assert logits[0, 2].item() == pytest.approx(s * cos_easy)
    logits = head(emb, torch.tensor([0]))
    t2 = 0.99 * t1 + 0.01 * cos_y
    assert head.t.item() == pytest.approx(t2)
    assert logits[0, 1].item() == pytest.approx(s * cos_hard * (t2 + cos_hard))


def test_curricularface_momentum_is_configurable_and_eval_freezes_t():
    head = _head_2d(CurricularFace, [0.0, 90.0], s=1.0, momentum=0.1)
    emb = torch.tensor([_unit(0.0), _unit(60.0)], dtype=torch.float64)
    head(emb, torch.tensor([0, 0]))
    assert head.t.item() == pytest.approx(0.1 * (1.0 + 0.5) / 2)
    head.eval()
    head(emb, torch.tensor([0, 0]))
    assert head.t.item() == pytest.approx(0.075)
    assert "t" in head.state_dict()


def _numpy_cifp(emb, weight, labels, s, m, far):
    """Independent numpy statement of CIFP's forward (TFace localfc Cifp, single process)."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    w = weight / np.linalg.norm(weight, axis=1, keepdims=True)
    cos = np.clip(e @ w.T, -1, 1)
    rows, classes = cos.shape
    out = cos.copy()
    target = cos[np.arange(rows), labels]
    is_target = np.zeros_like(cos, dtype=bool)
    is_target[np.arange(rows), labels] = True
    tmp = cos - 2.0 * is_target
    mis = tmp > target[:, None]
    k = math.ceil(far * (rows * (classes - 1) - mis.sum()) - 1e-9)
    threshold = np.sort((tmp - 2.0 * mis).ravel())[::-1][k - 1]
    fp = ~mis & (tmp > threshold)
    for i in range(rows):
        values = cos[i, fp[i]] ** 2
        penalty = values.mean() if values.size else 0.0
        out[i, labels[i]] = target[i] - m - (1 + target[i]) * penalty
    return s * out, fp, mis


@pytest.mark.parametrize("target_fpr", [None, 0.05, 0.3])
def test_cifp_matches_numpy_reference(target_fpr):
    rng = np.random.default_rng(1)
    rows, classes, dim = 12, 10, 6
    head = CIFP(dim, classes, s=8.0, m=0.35, target_fpr=target_fpr).double()
    weight = rng.normal(size=(classes, dim))
    labels = rng.integers(0, classes, rows)
    emb = weight[labels] + 1.2 * rng.normal(size=(rows, dim))  # some rows have misclassified negatives
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        got = head(torch.from_numpy(emb), torch.from_numpy(labels)).numpy()
    far = target_fpr if target_fpr is not None else 1.0 / (classes - 1)
    expected, fp, mis = _numpy_cifp(emb, weight, labels, 8.0, 0.35, far)
    assert fp.sum() > 0 and mis.sum() > 0  # both the exclusion and the penalty are exercised
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_cifp_false_positive_count_follows_unified_threshold():
    # 1 row, 5 classes, far = 1/(C-1): k = ceil((4 - #mis)/4) = 1 -> strictly above the 1st: no FP
    head = CIFP(2, 5, s=1.0, m=0.0).double()
    cos = torch.tensor([[0.9, 0.95, 0.3, 0.2, 0.1]], dtype=torch.float64)
    mask = torch.tensor([[True, False, False, False, False]])
    fp = head.false_positives(cos, mask, torch.tensor([0.9], dtype=torch.float64))
    assert not fp.any()  # 0.95 is misclassified; 0.3 is the threshold itself (strict >)
    head = CIFP(2, 5, s=1.0, m=0.0, target_fpr=0.75).double()  # k = ceil(0.75 * 3) = 3 -> T = 0.1
    fp = head.false_positives(cos, mask, torch.tensor([0.9], dtype=torch.float64))
    assert fp.tolist() == [[False, False, True, True, False]]


def _gradcheck_head(name: str, **kw) -> None:
    torch.manual_seed(3)
    head = build_head(name, 5, 7, s=3.0, **kw).double()
    emb = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (6,))
    weight = head.weight.detach().clone().requires_grad_()
    def run(e, w):
        return functional_call(head, {"weight": w}, (e, labels))

    assert torch.autograd.gradcheck(run, (emb, weight))


@pytest.mark.parametrize("name", ["arcface", "cosface"])
def test_gradcheck_heads(name):
    _gradcheck_head(name)


def test_gradcheck_cifp_through_live_and_detached_false_positives():
    torch.manual_seed(0)
    head = CIFP(5, 7, s=3.0, target_fpr=0.2).double()
    labels = torch.randint(0, 7, (8,))
    noise = torch.tensor([0.3] * 4 + [3.0] * 4, dtype=torch.float64).unsqueeze(1)
    emb = 100 * head.weight.detach()[labels] + noise * torch.randn(8, 5, dtype=torch.float64)
    emb.requires_grad_()
    frozen = head.weight.detach().clone()  # detached-weight cosines are constants w.r.t. the weights
    cos = cosine_logits(emb, frozen).detach()
    mask = torch.nn.functional.one_hot(labels, 7).bool()
    target = cos[torch.arange(8), labels]
    fp = head.false_positives(cos, mask, target)
    live = cos < (target - head.m).unsqueeze(1)
    assert (fp & live).any() and (fp & ~live).any()  # both branches of the penalty are exercised

    def run(e, w):
        return head.margin(cosine_logits(e, w), labels, frozen_cos=cosine_logits(e, frozen))

    assert torch.autograd.gradcheck(run, (emb, frozen.clone().requires_grad_()))


def test_gradcheck_curricularface_with_nonzero_t():
    _gradcheck_head("curricularface", momentum=0.0)  # training path, t held constant
    head = build_head("curricularface", 5, 7, s=3.0).double().eval()
    head.t.fill_(0.4)
    emb = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (6,))
    assert torch.autograd.gradcheck(lambda e: head(e, labels), (emb,))


def test_cifp_frozen_weights_route_gradient_to_embeddings_only():
    torch.manual_seed(0)
    head = CIFP(4, 6, s=4.0).double()
    emb = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 6, (8,))
    head(emb, labels).sum().backward()
    full = torch.autograd.grad(  # the same logits with live weights everywhere
        head.margin(cosine_logits(emb, head.weight), labels,
                    frozen_cos=cosine_logits(emb, head.weight)).sum(), head.weight)[0]
    assert not torch.allclose(head.weight.grad, full)  # detaching changes the weight gradient
    with pytest.raises(ValueError, match="frozen_cos"):
        head.margin(cosine_logits(emb, head.weight), labels)


def test_registry_and_bad_input():
    assert set(HEADS) == {"arcface", "cosface", "curricularface", "cifp"}
    head = build_head("cosface", 8, 5, m=0.3)
    assert isinstance(head, CosFace) and head.m == 0.3 and head.weight.shape == (5, 8)
    assert build_head("cifp", 8, 5, with_weight=False).weight is None
    with pytest.raises(ConfigError, match="unknown head"):
        build_head("sphereface", 8, 5)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        head(torch.randn(2, 8), torch.tensor([0, 5]))
