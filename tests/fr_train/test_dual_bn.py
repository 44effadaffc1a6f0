"""Dual-BN backbones (AFA): the fused BatchNorm by hand, the routes, checkpoints, a CPU forward, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.checkpoints.export import export_onnx, run_onnx
from fr_train.checkpoints.weights import load_weights, save_state_dict
from fr_train.models import get_model
from fr_train.models.dual_bn import DualBatchNorm, DualBNNet, FusionState


def _bn(mean: float, var: float, weight: float, bias: float) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(1, eps=0.0)
    bn.running_mean.fill_(mean)
    bn.running_var.fill_(var)
    with torch.no_grad():
        bn.weight.fill_(weight)
        bn.bias.fill_(bias)
    return bn


def _hand_module() -> tuple[DualBatchNorm, FusionState]:
    """clean: (x - 1) / 2; adversarial: 3 x + 1 (eval mode, eps 0)."""
    state = FusionState()
    module = DualBatchNorm(_bn(1.0, 4.0, 1.0, 0.0), state)
    with torch.no_grad():  # the adversarial copy starts equal to the clean one: give it its own statistics
        module.adversarial.running_mean.fill_(0.0)
        module.adversarial.running_var.fill_(1.0)
        module.adversarial.weight.fill_(3.0)
        module.adversarial.bias.fill_(1.0)
    return module.eval(), state


@pytest.mark.parametrize("weight, expected", [(0.0, [2.0, 0.0]), (1.0, [16.0, 4.0]),
                                              (torch.tensor([0.25, 0.5]), [5.5, 2.0])])
def test_dual_batchnorm_is_the_clean_bn_at_0_the_adversarial_at_1_and_their_mix_between(weight, expected):
    module, state = _hand_module()
    state.weight = weight
    x = torch.tensor([[5.0], [1.0]])  # clean: 2, 0; adversarial: 16, 4
    assert module(x).flatten().tolist() == pytest.approx(expected)


def test_dual_batchnorm_outside_its_net_is_an_error():
    module, _ = _hand_module()
    with pytest.raises(RuntimeError, match="inside its DualBNNet"):
        module(torch.ones(2, 1))


def test_a_forced_route_updates_only_its_own_statistics():
    torch.manual_seed(0)
    net = get_model("tiny", embedding_size=8, dual_bn=True).train()
    first = net.net.body[0][1]
    with net.routed("clean"):
        net(torch.randn(4, 3, 112, 112))
    assert int(first.clean.num_batches_tracked) == 1 and int(first.adversarial.num_batches_tracked) == 0
    assert net.last_weight is None  # forced: nothing predicted
    with net.routed("adversarial"):
        net(torch.randn(4, 3, 112, 112))
    assert int(first.adversarial.num_batches_tracked) == 1


def test_every_batchnorm_is_dual_and_the_predicted_weight_lies_in_0_1():
    torch.manual_seed(0)
    net = get_model("iresnet18", embedding_size=8, dual_bn=True).eval()
    plain = get_model("iresnet18", embedding_size=8)
    bns = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    assert sum(isinstance(m, DualBatchNorm) for m in net.modules()) == bns
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(p, DualBatchNorm)
                   for p in net.modules() for m in p.children())
    with torch.no_grad():
        out = net(torch.randn(2, 3, 112, 112))
    assert out.shape == (2, 8) and torch.isfinite(out).all()
    assert net.last_weight.shape == (2,) and bool(((net.last_weight > 0) & (net.last_weight < 1)).all())


def _randomised(net: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, value in net.state_dict().items():
            if value.dtype.is_floating_point:
                value.copy_(torch.rand_like(value) + (0.5 if "running_var" in name else 0.0))
    return net.eval()


def test_state_dict_round_trip_through_a_checkpoint_file(tmp_path):
    torch.manual_seed(0)
    net = _randomised(get_model("tiny", embedding_size=8, dual_bn=True))
    path = save_state_dict(net, tmp_path / "model.pt")
    again = load_weights(get_model("tiny", embedding_size=8, dual_bn=True), path).eval()
    images = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(net(images), again(images))
    assert {k for k in net.state_dict() if ".adversarial." in k} and {k for k in net.state_dict() if "predictor." in k}


def test_a_single_bn_checkpoint_loads_into_both_copies(tmp_path):
    torch.manual_seed(0)
    plain = _randomised(get_model("tiny", embedding_size=8))
    net = load_weights(get_model("tiny", embedding_size=8, dual_bn=True), save_state_dict(plain, tmp_path / "p.pt"))
    net.eval()
    images = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        expected = plain(images)
        for route in ("clean", "adversarial", None):  # both copies equal the one BN: any weight gives the same
            with net.routed(route):
                assert torch.allclose(net(images), expected, atol=1e-5)


def test_dual_bn_must_be_a_boolean():
    with pytest.raises(ConfigError, match="dual_bn"):
        get_model("tiny", dual_bn="yes")


def test_onnx_export_uses_the_predicted_weight(tmp_path):
    torch.manual_seed(0)
    net = _randomised(get_model("tiny", embedding_size=8, dual_bn=True))
    assert isinstance(net, DualBNNet)
    path = export_onnx(net, tmp_path / "dual.onnx")
    images = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        expected = net(images).numpy()
    assert np.max(np.abs(run_onnx(path, images.numpy()) - expected)) <= 1e-4 * max(1.0, np.max(np.abs(expected)))
