"""Backbones by name: ``get_model("iresnet50")``, ``get_model("tiny", embedding_size=64)``.

Every model takes ``(N, 3, 112, 112)`` RGB images normalised as ``(x / 255 - 0.5) / 0.5`` and returns
``(N, embedding_size)`` features (512 by default). New architectures join with :func:`register_model`.

arcface_torch ``backbone.pth`` files load unchanged into ``iresnet18/34/50/100/200`` (its ``r18`` ..
``r200``) and ``mbf`` / ``mbf_large`` (its ``mbf`` / ``mbf_large``); ``mobilefacenet`` is the paper's
layout, not arcface_torch's ``mbf``.

``dual_bn=True`` (``model: {options: {dual_bn: true}}``) wraps any of them as a dual-BN backbone
(:class:`fr_train.models.dual_bn.DualBNNet`: clean and adversarial BatchNorms fused by a predicted weight).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.models.dual_bn import DualBNNet
from fr_train.models.dual_bn import dual_bn as make_dual_bn
from fr_train.models.iresnet import IResNet, iresnet18, iresnet34, iresnet50, iresnet100, iresnet200
from fr_train.models.mbf import MBF, mbf, mbf_large
from fr_train.models.mobilefacenet import MobileFaceNet, mobilefacenet
from fr_train.models.tiny import TinyNet, tiny

__all__ = ["MODELS", "register_model", "get_model", "DualBNNet", "IResNet", "MBF", "MobileFaceNet", "TinyNet"]

ModelFactory = Callable[..., nn.Module]

#: Name -> factory taking keyword arguments (``embedding_size``, and model-specific ones).
MODELS: dict[str, ModelFactory] = {
    "iresnet18": iresnet18,
    "iresnet34": iresnet34,
    "iresnet50": iresnet50,
    "iresnet100": iresnet100,
    "iresnet200": iresnet200,
    "mbf": mbf,
    "mbf_large": mbf_large,
    "mobilefacenet": mobilefacenet,
    "tiny": tiny,
}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding a factory to :data:`MODELS` under ``name`` (a duplicate name is an error)."""

    def add(factory: ModelFactory) -> ModelFactory:
        if name in MODELS:
            raise ConfigError(f"model {name!r} is already registered")
        MODELS[name] = factory
        return factory

    return add


def get_model(name: str, *, dual_bn: bool = False, **kwargs) -> nn.Module:
    """Build the backbone registered as ``name`` with ``kwargs`` (e.g. ``embedding_size=512``); with
    ``dual_bn`` its dual-BN version (:func:`fr_train.models.dual_bn.dual_bn`)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
    if not isinstance(dual_bn, bool):
        raise ConfigError(f"model.options.dual_bn must be true or false, got {dual_bn!r}")
    model = factory(**kwargs)
    return make_dual_bn(model) if dual_bn else model
