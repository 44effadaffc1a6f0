"""Tests of fr_train.optim: learning rates at known steps (hand-computed) and optimiser construction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.config import OptimConfig, ScheduleConfig
from fr_train.optim import build_optimizer, build_schedule


def test_warmup_then_polynomial():
    # lr 0.1, warmup 2 steps, 10 steps, power 2: decay progress p = (step - 2) / 8
    s = build_schedule(ScheduleConfig("polynomial", warmup_steps=2, power=2.0), 0.1, 10, 5)
    assert [s.lr(0), s.lr(1), s.lr(2)] == pytest.approx([0.05, 0.1, 0.1])
    assert s.lr(6) == pytest.approx(0.1 * 0.5**2)  # p = 0.5 -> 0.025
    assert s.lr(9) == pytest.approx(0.0015625)  # p = 7/8 -> 0.1 * (1/8)^2


def test_cosine_with_floor():
    s = build_schedule(ScheduleConfig("cosine", warmup_steps=2, min_lr=0.01), 0.1, 10, 5)
    assert s.lr(2) == pytest.approx(0.1)
    assert s.lr(6) == pytest.approx(0.055)  # halfway: 0.01 + 0.09 / 2
    assert s.lr(9) == pytest.approx(0.01342542, abs=1e-8)  # 0.01 + 0.09 * (1 + cos(7 pi / 8)) / 2


def test_multistep_milestones_in_epochs():
    s = build_schedule(ScheduleConfig("multistep", milestones=[1.0, 1.5], gamma=0.1), 0.1, 10, 5)
    assert [s.lr(4), s.lr(5), s.lr(7), s.lr(8)] == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_warmup_epochs_and_constant():
    s = build_schedule(ScheduleConfig("constant", warmup_epochs=0.5), 0.2, 20, 8)  # 4 warmup steps
    assert s.warmup_steps == 4
    assert [s.lr(0), s.lr(3), s.lr(4), s.lr(19)] == pytest.approx([0.05, 0.2, 0.2, 0.2])


def test_apply_sets_every_group():
    groups = [{"params": [nn.Parameter(torch.ones(1))]}, {"params": [nn.Parameter(torch.ones(1))]}]
    opt = torch.optim.SGD(groups, lr=1.0)
    s = build_schedule(ScheduleConfig("polynomial", warmup_steps=4), 0.4, 10, 5)
    assert s.apply(opt, 1) == pytest.approx(0.2)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.2])


def test_warmup_longer_than_the_run_is_an_error():
    with pytest.raises(ConfigError, match="warmup"):
        build_schedule(ScheduleConfig(warmup_steps=10), 0.1, 10, 5)


def test_optimizers_take_the_configured_values_and_skip_frozen_parameters():
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    sgd = build_optimizer(model.parameters(), OptimConfig("sgd", lr=0.1, momentum=0.9, weight_decay=5e-4))
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 5e-4)
    assert len(group["params"]) == 1  # the frozen bias is not optimised
    cfg = OptimConfig("adamw", lr=1e-3, betas=[0.8, 0.99], weight_decay=0.05)
    adamw = build_optimizer(model.parameters(), cfg)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["betas"] == (0.8, 0.99) and adamw.param_groups[0]["weight_decay"] == 0.05


def test_sgd_step_matches_the_hand_computed_update():
    w = nn.Parameter(torch.tensor([1.0]))
    opt = build_optimizer([w], OptimConfig("sgd", lr=0.1, momentum=0.9, weight_decay=0.5))
    for _ in range(2):
        opt.zero_grad()
        (2 * w).sum().backward()
        opt.step()
    # step 1: g = 2 + 0.5 * 1 = 2.5, v = 2.5, w = 0.75; step 2: g = 2 + 0.375 = 2.375, v = 0.9 * 2.5 + 2.375
    assert w.item() == pytest.approx(0.75 - 0.1 * (0.9 * 2.5 + 2.375))
