"""Tests of fr_data.embed.model_spec: factories + checkpoints, TorchScript files, registry names, bad specs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fr_data.embed.model_spec import load_checkpoint, resolve_model
from fr_data.io.errors import ConfigError, DataError

FACTORY = "tests.fr_data.embed.test_model_spec:make_net"


def make_net(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4), nn.Flatten(1),
                             nn.AdaptiveAvgPool1d(8))


def not_a_module() -> int:
    return 3


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_factory_with_checkpoint_loads_the_weights(tmp_path, x):
    trained = make_net(seed=5).eval()
    torch.save(trained.state_dict(), tmp_path / "backbone.pth")
    model = resolve_model(FACTORY, tmp_path / "backbone.pth")
    assert not model.training
    torch.testing.assert_close(model(x), trained(x))
    assert not torch.allclose(make_net(seed=0).eval()(x), trained(x))  # the checkpoint made the difference


@pytest.mark.parametrize("wrap", [lambda sd: {"state_dict": sd},
                                  lambda sd: {f"module.{k}": v for k, v in sd.items()}])
def test_wrapped_and_ddp_prefixed_state_dicts(tmp_path, x, wrap):
    trained = make_net(seed=5).eval()
    torch.save(wrap(trained.state_dict()), tmp_path / "ckpt.pth")
    torch.testing.assert_close(resolve_model(FACTORY, tmp_path / "ckpt.pth")(x), trained(x))


def test_mismatched_checkpoint_is_a_data_error(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(DataError, match=r"bad.pth: state dict does not match"):
        resolve_model(FACTORY, tmp_path / "bad.pth")


class Payload:  # an arbitrary pickled object must not be unpickled
    pass


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    torch.save({"weight": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(DataError, match="weights-only"):
        load_checkpoint(make_net(), tmp_path / "evil.pth")


def test_torchscript_file(tmp_path, x):
    net = make_net(seed=3).eval()
    torch.jit.trace(net, x).save(str(tmp_path / "model.ts"))
    model = resolve_model(str(tmp_path / "model.ts"))
    torch.testing.assert_close(model(x), net(x))
    with pytest.raises(ConfigError, match="carries its own weights"):
        resolve_model(str(tmp_path / "model.ts"), tmp_path / "model.ts")


def test_state_dict_passed_as_torchscript_is_explained(tmp_path):
    torch.save(make_net().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(DataError, match="not a TorchScript archive"):
        resolve_model(str(tmp_path / "weights.pt"))


def test_named_models_come_from_the_injected_registry(x):
    registry = {"net": make_net}
    model = resolve_model("net", named=lambda name: registry[name]())
    torch.testing.assert_close(model(x), make_net().eval()(x))
    with pytest.raises(ConfigError, match="unknown model 'other'"):
        resolve_model("other", named=lambda name: registry[name]())
    with pytest.raises(ConfigError, match="no named-model registry"):
        resolve_model("net")


@pytest.mark.parametrize("spec, message", [
    ("tests.fr_data.nope:make", "cannot import"),
    ("tests.fr_data.embed.test_model_spec:missing", "no callable 'missing'"),
    ("tests.fr_data.embed.test_model_spec:not_a_module", "not a torch.nn.Module"),
    (":make", "must look like"),
    ("missing_file.pt", "does not exist"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve_model(spec)
