"""The config of a backbone (``model:``, and the objective's ``teacher:``), torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelConfig"]


@dataclass
class ModelConfig:
    """A backbone.

    Attributes:
        name: a :data:`fr_train.models.MODELS` name (``iresnet50``, ``mobilefacenet``, ``tiny``, ...).
        embedding_size: feature dimension.
        options: extra keyword arguments of the model factory.
        weights: initial weights (a state-dict checkpoint, e.g. for fine-tuning); None: random init.
    """

    name: str = "iresnet50"
    embedding_size: int = 512
    options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
