"""Dual-BN backbones for adaptive feature alignment (AFA: Wang et al., "Adaptive Feature Alignment for
Adversarial Training", 2021, https://arxiv.org/abs/2105.15157).

:func:`dual_bn` turns any backbone into a :class:`DualBNNet`: every BatchNorm becomes a
:class:`DualBatchNorm` holding two copies, ``clean`` (statistics of clean images) and ``adversarial``
(statistics of attacked images), whose outputs are fused per image::

    y = (1 - w(x)) * BN_clean(h) + w(x) * BN_adversarial(h)

where ``w(x)`` in [0, 1] is predicted from the input image by a small :class:`FusionPredictor`
(a stride-2 3x3 convolution, ReLU, global average pooling, a linear layer, a sigmoid); one weight per image,
shared by every layer. During adversarial training (:mod:`fr_train.adversarial`) the weight is forced:
clean images run through the clean branch only (``w = 0``), attacked images through the adversarial branch
only (``w = 1``), and the predictor learns ``w`` from the attack strength. At inference ``w`` is predicted,
so one model serves clean and attacked inputs without a strength hyper-parameter.

``get_model(name, dual_bn=True)`` (``model: {options: {dual_bn: true}}`` in a training config) builds it,
so checkpoints, ``load_backbone``, ``hardmine embed`` and the ONNX export handle it like any backbone. A
single-BN checkpoint of the same architecture loads into it (each BN into both copies, the predictor kept
as initialised): fine-tuning starts from a pretrained plain backbone.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["FusionState", "DualBatchNorm", "FusionPredictor", "DualBNNet", "dual_bn", "ROUTES"]

#: Forced fusion weights of the training routes.
ROUTES = {"clean": 0.0, "adversarial": 1.0}
_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class FusionState:
    """The fusion weight of the forward pass in progress, shared by every :class:`DualBatchNorm` of one net:
    a float (0 or 1: one branch only) or an ``(N,)`` tensor (one weight per image); None outside a pass."""

    def __init__(self) -> None:
        self.weight: float | torch.Tensor | None = None


class DualBatchNorm(nn.Module):
    """Two copies of a BatchNorm, fused by the net's current weight (see the module docstring).

    Args:
        bn: the BatchNorm to duplicate (``clean`` is it, ``adversarial`` a deep copy).
        state: the net's shared :class:`FusionState`.
    """

    def __init__(self, bn: _BatchNorm, state: FusionState):
        super().__init__()
        self.clean, self.adversarial = bn, copy.deepcopy(bn)
        self.state = state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.state.weight
        if weight is None:
            raise RuntimeError("DualBatchNorm runs only inside its DualBNNet (no fusion weight set)")
        if isinstance(weight, float):  # a forced route runs (and updates the statistics of) one branch
            if weight == 0.0:
                return self.clean(x)
            if weight == 1.0:
                return self.adversarial(x)
            weight = x.new_full((x.shape[0],), weight)
        w = weight.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return (1 - w) * self.clean(x) + w * self.adversarial(x)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """A single-BN entry (``prefix.weight`` ...) loads into both copies."""
        if f"{prefix}clean.weight" not in state_dict and f"{prefix}weight" in state_dict:
            for key in _BN_KEYS:
                if f"{prefix}{key}" in state_dict:
                    value = state_dict.pop(f"{prefix}{key}")
                    state_dict[f"{prefix}clean.{key}"] = value
                    state_dict[f"{prefix}adversarial.{key}"] = value.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class FusionPredictor(nn.Module):
    """Image -> fusion weight in [0, 1]: conv 3x3 stride 2 (3 -> ``width``), ReLU, global average pool,
    linear, sigmoid. Attack perturbations are high-frequency; the pooled responses of a learnt filter bank
    measure them. Returns ``(N,)``."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.fc = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return torch.sigmoid(self.fc(pooled)).squeeze(1)


class DualBNNet(nn.Module):
    """A backbone whose BatchNorms are :class:`DualBatchNorm` s, fused by a predicted (or forced) weight.

    Args:
        net: the backbone (converted in place).

    Attributes:
        last_weight: the predicted weights ``(N,)`` of the last forward pass that predicted them (None after
            a forced route); the training loop fits them to the attack strength.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.state = FusionState()
        self.net = _convert(net, self.state)
        self.predictor = FusionPredictor()
        self.route: float | None = None
        self.last_weight: torch.Tensor | None = None

    @contextlib.contextmanager
    def routed(self, route: str | None) -> Iterator[None]:
        """Within the block, forward passes use the forced weight of ``route`` (:data:`ROUTES`); None: the
        predicted weight."""
        previous, self.route = self.route, (None if route is None else ROUTES[route])
        try:
            yield
        finally:
            self.route = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.route is None:
            weight: float | torch.Tensor = self.predictor(x)
            self.last_weight = weight
        else:
            weight, self.last_weight = self.route, None
        self.state.weight = weight
        try:
            return self.net(x)
        finally:
            self.state.weight = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """A plain backbone's state dict (no ``net.`` keys) loads into ``net``; the predictor keeps its
        current weights."""
        if state_dict and not any(k.startswith(f"{prefix}net.") for k in state_dict):
            plain = [k for k in state_dict if k.startswith(prefix)]
            for key in plain:
                state_dict[f"{prefix}net.{key[len(prefix):]}"] = state_dict.pop(key)
            for key, value in self.predictor.state_dict().items():
                state_dict[f"{prefix}predictor.{key}"] = value.detach().clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


def _convert(module: nn.Module, state: FusionState) -> nn.Module:
    """``module`` with every BatchNorm (1d, 2d, 3d) replaced by a :class:`DualBatchNorm` (in place)."""
    if isinstance(module, _BatchNorm):
        return DualBatchNorm(module, state)
    for name, child in module.named_children():
        setattr(module, name, _convert(child, state))
    return module


def dual_bn(net: nn.Module) -> DualBNNet:
    """The dual-BN version of ``net`` (see :class:`DualBNNet`)."""
    return DualBNNet(net)
