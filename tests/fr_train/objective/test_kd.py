"""Tests of fr_train.objective.kd: the low-resolution copy, the margin loss on the teacher's classifier
(against a hand-built reference), classifier loading checks, and the frozen teacher."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fr_data.io.errors import ConfigError
from fr_train.config import ModelConfig
from fr_train.models import get_model
from fr_train.objective.kd import (
    FrozenTeacher,
    LowResCopy,
    LowResDistillation,
    degrade_batch,
    load_classifier,
)


def test_degrade_keeps_shape_and_constant_images_and_removes_detail():
    flat = torch.full((1, 3, 16, 16), 0.25)
    stripes = torch.zeros(1, 3, 16, 16)
    stripes[..., ::2] = 1.0  # highest horizontal frequency
    out = degrade_batch(torch.cat([flat, stripes]), torch.tensor([0.5, 0.25]))
    assert out.shape == (2, 3, 16, 16)
    torch.testing.assert_close(out[0], flat[0])
    assert out[1].std() < 0.05 * stripes[0].std()  # stripes average out to grey
    assert out[1].mean().item() == pytest.approx(0.5, abs=0.02)
    torch.testing.assert_close(degrade_batch(stripes, torch.tensor([1.0])), stripes)


def test_lowres_loss_is_arcface_on_the_teacher_classifier():
    classifier = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    kd = LowResDistillation(classifier, s=10.0, m=0.3)
    angle = 0.4
    emb = torch.tensor([[math.cos(angle), math.sin(angle)]])  # 0.4 rad from class 0, 1.17 from class 1
    loss = kd(emb * 3.0, torch.tensor([0]))
    logits = 10.0 * torch.tensor([[math.cos(angle + 0.3), math.sin(angle), -math.cos(angle)]])
    assert loss.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0])).item(), rel=1e-5)
    assert not kd.classifier.requires_grad


def test_lowres_draws_are_reproducible_from_the_generator_state():
    copy = LowResCopy((0.25, 0.5), generator=torch.Generator().manual_seed(3))
    images = torch.rand(4, 3, 16, 16)
    state = copy.generator.get_state()
    first = copy(images)
    copy.generator.set_state(state)
    torch.testing.assert_close(copy(images), first, rtol=0, atol=0)
    factors = 0.25 + 0.25 * torch.rand(4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(first, degrade_batch(images, factors), rtol=0, atol=0)


def test_load_classifier_checks_key_and_shape(tmp_path):
    path = tmp_path / "objective.pt"
    torch.save({"head.weight": torch.randn(5, 8)}, path)
    assert load_classifier(path, "head.weight", 5, 8).shape == (5, 8)
    with pytest.raises(ConfigError, match="'weight' is not a tensor"):
        load_classifier(path, "weight", 5, 8)
    with pytest.raises(ConfigError, match=r"needs \(6, 8\)"):
        load_classifier(path, "head.weight", 6, 8)


def test_frozen_teacher_loads_weights_and_is_frozen(tmp_path):
    torch.manual_seed(0)
    source = get_model("tiny", embedding_size=8)
    torch.save(source.state_dict(), tmp_path / "teacher.pt")
    teacher = FrozenTeacher.from_config(ModelConfig("tiny", 8, weights=str(tmp_path / "teacher.pt")))
    images = torch.rand(2, 3, 112, 112)
    out = teacher(images)
    assert not out.requires_grad and not teacher.backbone.training
    torch.testing.assert_close(out, source.eval()(images))
    with pytest.raises(ConfigError, match="teacher.weights"):
        FrozenTeacher.from_config(ModelConfig("tiny", 8))


def test_log_uniform_copies_use_the_geometric_draw():
    copy = LowResCopy((0.125, 0.5), generator=torch.Generator().manual_seed(4), dist="log_uniform")
    images = torch.rand(3, 3, 16, 16)
    u = torch.rand(3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    factors = 0.125 * 4.0 ** u  # (0.5 / 0.125) ** u
    torch.testing.assert_close(copy(images), degrade_batch(images, factors), rtol=0, atol=0)
