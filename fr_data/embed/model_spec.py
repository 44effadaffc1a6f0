"""Turn a model SPEC string (+ optional checkpoint) into a ``torch.nn.Module``, without importing fr_train.

A SPEC is one of:

* a TorchScript file (``.pt``, ``.ts``, ``.torchscript``, ``.jit``), loaded with ``torch.jit.load``; it
  carries its own weights, so no checkpoint is accepted;
* an ONNX file (``.onnx``), run with onnxruntime behind the same interface
  (:mod:`fr_data.embed.onnx_model`); it too carries its own weights;
* ``package.module:factory``: any importable callable returning an ``nn.Module`` (called without
  arguments);
* a plain name, looked up with a ``named`` callable the caller passes in (the CLI passes
  ``fr_train.models.get_model``; fr_data itself never imports fr_train).

Checkpoints are state dicts read with ``torch.load(weights_only=True)`` (no arbitrary pickles) and loaded
strictly. InsightFace arcface_torch ``backbone.pth`` files are plain state dicts and load unchanged into a
matching backbone; DistributedDataParallel ``module.`` prefixes and a ``{"state_dict": ...}`` /
``{"model": ...}`` wrapper are unwrapped.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fr_data.embed.onnx_model import OnnxInput, is_onnx_spec, load_onnx_model
from fr_data.embed.weights import load_weights
from fr_data.io.errors import ConfigError, DataError, one_line

__all__ = ["TORCHSCRIPT_SUFFIXES", "NamedModelFactory", "load_checkpoint", "load_factory",
           "load_torchscript", "resolve_model"]

TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".torchscript", ".jit")
NamedModelFactory = Callable[[str], nn.Module]


def resolve_model(spec: str, checkpoint: str | os.PathLike | None = None, *,
                  named: NamedModelFactory | None = None, onnx_input: OnnxInput | None = None,
                  device: str | torch.device = "cpu") -> nn.Module:
    """Build the model a SPEC names (see the module docstring) and load ``checkpoint`` into it.

    Args:
        spec: TorchScript file, ONNX file, ``package.module:factory`` or a registry name.
        checkpoint: optional state-dict file for a factory- or name-built model.
        named: maps a registry name to a fresh module (e.g. ``fr_train.models.get_model``).
        onnx_input: input-convention overrides of an ONNX model (refused for any other kind).
        device: where the model will run (selects onnxruntime's execution provider for an ONNX model).

    Returns:
        The module in eval mode, on the CPU.

    Raises:
        ConfigError: the SPEC cannot be resolved (unknown name, bad import path, checkpoint given with
            a TorchScript file).
        DataError: a file exists but cannot be read as what the SPEC says it is.
    """
    if is_onnx_spec(spec):
        _no_checkpoint(spec, checkpoint, "an ONNX file")
        return load_onnx_model(spec, onnx_input, device).eval()
    if onnx_input is not None and onnx_input != OnnxInput():
        raise ConfigError(f"model {spec!r}: --input-mean, --input-std and --channel-order apply only to an "
                          "ONNX model (.onnx)")
    if _is_torchscript_spec(spec):
        _no_checkpoint(spec, checkpoint, "a TorchScript file")
        return load_torchscript(spec).eval()
    if ":" in spec:
        model = _call_factory(load_factory(spec), spec)
    elif named is not None:
        model = _call_factory(lambda: named(spec), spec)
    else:
        raise ConfigError(f"model {spec!r}: not a TorchScript file, not 'package.module:factory', and no "
                          "named-model registry is available (install/import fr_train)")
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.eval()


def load_torchscript(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """Load a TorchScript archive onto the CPU; a non-TorchScript file raises DataError."""
    if not Path(path).is_file():
        raise ConfigError(f"TorchScript model {os.fspath(path)!r} does not exist")
    try:
        return torch.jit.load(os.fspath(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise DataError(path, "", "not a TorchScript archive (a plain state dict needs "
                        f"--model NAME_OR_FACTORY --checkpoint FILE): {exc}") from exc


def load_factory(spec: str) -> Callable[[], nn.Module]:
    """Import ``package.module:attribute`` and return the callable it names."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"model factory {spec!r} must look like 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model factory {spec!r}: cannot import {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"model factory {spec!r}: {module_name} has no callable {attr!r}")
    return factory


def load_checkpoint(model: nn.Module, checkpoint: str | os.PathLike) -> nn.Module:
    """Load a state-dict file into ``model`` strictly (``torch.load(weights_only=True)``).

    Wrappers (``state_dict``/``model``/``backbone``...) and DDP/compile key prefixes are removed by
    :func:`fr_data.embed.weights.load_weights`.
    """
    if not Path(checkpoint).is_file():
        raise ConfigError(f"checkpoint {os.fspath(checkpoint)!r} does not exist")
    return load_weights(model, checkpoint, strict=True)


def _call_factory(factory: Callable[[], nn.Module], spec: str) -> nn.Module:
    try:
        model = factory()
    except KeyError as exc:
        raise ConfigError(f"unknown model {spec!r}: {exc}") from exc
    except Exception as exc:  # any callable may be named: its failure is the user's config
        raise ConfigError(f"model {spec!r}: calling the factory failed: {type(exc).__name__}: "
                          f"{one_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {spec!r} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def _no_checkpoint(spec: str, checkpoint: str | os.PathLike | None, kind: str) -> None:
    if checkpoint is not None:
        raise ConfigError(f"model {spec!r} is {kind} that carries its own weights; "
                          "do not pass a checkpoint with it")


def _is_torchscript_spec(spec: str) -> bool:
    return spec.lower().endswith(TORCHSCRIPT_SUFFIXES) and ":" not in spec
