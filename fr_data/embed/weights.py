"""Safe model-weight loading: tensors only (``torch.load(..., weights_only=True)``), common wrappers unwrapped.

Accepted layouts: a plain state dict (InsightFace ``backbone.pth``), or a dict holding it under
``state_dict`` / ``model`` / ``backbone`` / ``state_dict_backbone``; keys may carry the DDP ``module.``
or ``torch.compile`` ``_orig_mod.`` prefixes, which are stripped. Nothing is unpickled beyond the
tensor/container types ``weights_only`` allows.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fr_data.io.errors import DataError, one_line

__all__ = ["load_state_dict", "load_weights", "WRAPPER_KEYS", "STRIP_PREFIXES"]

#: Keys under which training scripts commonly nest the model's state dict, tried in this order.
WRAPPER_KEYS = ("state_dict", "model", "backbone", "state_dict_backbone")
#: Key prefixes added by wrappers (DDP, torch.compile), removed when every key carries them.
STRIP_PREFIXES = ("module.", "_orig_mod.")


def _unwrap(obj: object, path: Path) -> Mapping:
    while isinstance(obj, Mapping):
        nested = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            return obj
        obj = nested
    raise DataError(path, "", f"expected a state dict (mapping of tensors), found {type(obj).__name__}")


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in STRIP_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    return state


def load_state_dict(path: str | os.PathLike,
                    map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a model state dict from ``path`` with the restricted (``weights_only``) unpickler.

    Args:
        path: a ``.pth``/``.pt`` file written by ``torch.save``.
        map_location: device for the loaded tensors.

    Returns:
        ``{parameter name: tensor}`` with wrappers and DDP/compile prefixes removed.

    Raises:
        DataError: the file cannot be read safely or does not hold a mapping of tensors (naming the key).
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, KeyError, IndexError, TypeError,
            AttributeError, MemoryError) as err:  # a file that is not a torch.save archive fails in many ways
        raise DataError(path, "", f"cannot load as a weights-only checkpoint: {type(err).__name__}: "
                        f"{one_line(err)}") from err
    state = _unwrap(obj, path)
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise DataError(path, f"key {key!r}", f"expected a tensor, found {type(value).__name__}")
    return _strip_prefixes(dict(state))


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True,
                 map_location: str | torch.device = "cpu") -> nn.Module:
    """Load the checkpoint at ``path`` into ``model`` (strictly by default) and return the model.

    Raises:
        DataError: missing/unexpected keys or shape mismatches, naming the file.
    """
    state = load_state_dict(path, map_location)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise DataError(path, "", f"state dict does not match {type(model).__name__}: {err}") from err
    return model
