"""A trained quality regressor as one module: images -> quality score (higher = better).

A run of a config with the ``quality`` term (``configs/sdd_fiqa_synth.yaml``, ``configs/sdd_fiqa_r50.yaml``)
leaves checkpoints ``OUTPUT/checkpoints/step-N/`` holding the backbone (``model.pt``), the objective with
the quality head (``objective.pt``, keys ``terms.quality.*``) and the resolved ``config.yaml``.
:func:`load_quality_model` rebuilds backbone + head from such a folder (or from the run folder, taking its
latest checkpoint) for ``tools/embed.py --quality-model`` and the ERC benchmark. Scores are in the units of
the training targets (0-100 for SDD-FIQA pseudo-labels).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fr_data.io.errors import ConfigError, DataError
from fr_data.io.hashing import file_sha256
from fr_train.config import TrainConfig, load_train_config
from fr_train.losses import QualityRegression
from fr_train.models import get_model
from fr_train.resume import CheckpointStore, load_tensors

__all__ = ["QualityModel", "load_quality_model", "resolve_checkpoint", "QUALITY_PREFIX"]

#: State-dict prefix of the quality head in ``objective.pt``.
QUALITY_PREFIX = "terms.quality."


class QualityModel(nn.Module):
    """``regression(backbone(images))``: one quality score per image ``(B,)``, in target units."""

    def __init__(self, backbone: nn.Module, regression: QualityRegression):
        super().__init__()
        self.backbone, self.regression = backbone, regression

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.regression(self.backbone(images))


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder (holding ``model.pt``), or a run folder's latest checkpoint.

    Raises:
        ConfigError: the path does not exist or holds no checkpoint.
    """
    path = Path(path)
    if (path / "model.pt").is_file():
        return path
    latest = CheckpointStore(path / "checkpoints").latest() if path.is_dir() else None
    if latest is None:
        raise ConfigError(f"quality model {os.fspath(path)!r}: not a checkpoint folder (model.pt, objective.pt, "
                          "config.yaml) nor a training run folder with checkpoints")
    return latest


def _quality_config(folder: Path) -> TrainConfig:
    config = folder / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"quality model {os.fspath(folder)!r} has no config.yaml")
    cfg = load_train_config(config)
    if cfg.objective.terms.quality is None:
        raise ConfigError(f"{config}: not a quality regressor (objective.terms.quality is not set)")
    return cfg


def load_quality_model(path: str | os.PathLike) -> tuple[QualityModel, dict[str, Any]]:
    """The quality model of a checkpoint (or of a run folder's latest one), in eval mode on the CPU.

    Returns:
        The model and its spec (checkpoint folder, backbone name, sha256 of both state files), for run.json.

    Raises:
        ConfigError: no checkpoint there, or one not trained with the ``quality`` term.
        DataError: a state file that does not match the config's backbone or head.
    """
    folder = resolve_checkpoint(path)
    cfg = _quality_config(folder)
    backbone = get_model(cfg.model.name, embedding_size=cfg.model.embedding_size, **cfg.model.options)
    term = cfg.objective.terms.quality
    regression = QualityRegression(cfg.model.embedding_size, term.scale, term.delta)
    _load(backbone, load_tensors(folder / "model.pt"), folder / "model.pt")
    objective = load_tensors(folder / "objective.pt")
    head = {k[len(QUALITY_PREFIX):]: v for k, v in objective.items() if k.startswith(QUALITY_PREFIX)}
    _load(regression, head, folder / "objective.pt")
    spec = {"checkpoint": os.fspath(folder), "model": cfg.model.name, "target": cfg.objective.target_column,
            "model_sha256": file_sha256(folder / "model.pt"),
            "objective_sha256": file_sha256(folder / "objective.pt")}
    return QualityModel(backbone, regression).eval(), spec


def _load(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(path, "", f"does not match the quality model's {type(module).__name__}: "
                        f"{str(exc).splitlines()[0]}") from None
