"""The SDD-FIQA quality regressor: its scalar head and Huber loss (the objective's ``quality`` term), and a
trained regressor loaded back as one module (images -> quality score, higher = better).

SDD-FIQA (Ou et al., CVPR 2021, https://arxiv.org/abs/2103.05977) labels every training image with the
Wasserstein distance between its intra-class and inter-class similarity distributions (normalised to
0-100; :mod:`fr_data.mining.quality` computes it as the mining run's ``quality_sdd``), then trains a
regression network on those labels "under the constraint of Huber loss" (the paper's Fig. 2; the authors'
reference training in TFace uses SmoothL1, i.e. Huber with delta 1 on the 0-100 labels). Here the head
predicts ``target / scale`` and the loss is ``smooth_l1(prediction, target / scale, beta=delta / scale)``:
the Huber loss of the labels with threshold ``delta`` (in label units) divided by ``delta * scale``, so the
gradient is bounded by 1 whatever the label scale. Samples without a label (NaN) do not count.

A run of a config with the ``quality`` term (``configs/sdd_fiqa_synth.yaml``, ``configs/sdd_fiqa_r50.yaml``)
leaves checkpoints ``OUTPUT/checkpoints/step-N/`` holding the backbone (``model.pt``), the objective with
the quality head (``objective.pt``, keys ``terms.quality.*``) and the resolved ``config.yaml``.
:func:`load_quality_model` rebuilds backbone + head from such a folder (or from the run folder, taking its
latest checkpoint) for ``hardmine embed --quality-model`` and the ERC benchmark. Scores are in the units of
the training targets (0-100 for SDD-FIQA pseudo-labels).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from fr_data.folders.training_run_folder import checkpoints_dir, config_path, weights_path
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.hashing import file_sha256
from fr_train.checkpoints.resume import CheckpointStore, load_tensors
from fr_train.models import get_model
from fr_train.objective.losses.functional import LossOutput

if TYPE_CHECKING:
    from fr_train.config import TrainConfig

__all__ = ["QualityRegression", "QualityModel", "load_quality_model", "resolve_checkpoint", "QUALITY_PREFIX"]

class QualityRegression(nn.Module):
    """The scalar quality head and its Huber loss (see the module docstring).

    Args:
        embedding_size: width of the backbone's embedding (the head's input).
        scale: label units per head unit (SDD-FIQA labels span 0-100: 100 puts them in [0, 1]).
        delta: the Huber threshold in label units (1: TFace's SmoothL1 on the 0-100 labels).

    The ``scale`` is a buffer, so a checkpoint of the objective alone turns head outputs back into labels.
    """

    def __init__(self, embedding_size: int, scale: float = 100.0, delta: float = 1.0):
        super().__init__()
        if scale <= 0 or delta <= 0:
            raise ValueError(f"scale and delta must be > 0, got scale {scale}, delta {delta}")
        self.head = nn.Linear(embedding_size, 1)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.delta = float(delta)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Predicted quality ``(B,)`` in label units (higher = better)."""
        return self.head(embeddings.float()).squeeze(1) * self.scale

    def batch_loss(self, batch) -> LossOutput:
        """Huber loss of the embeddings' predictions against ``batch.targets`` (NaN targets skipped).

        Parts: ``mae``, the mean absolute error in label units (0 when the batch has no label).
        """
        targets = batch.require("targets", self).float()
        predicted = self.head(batch.embeddings.float()).squeeze(1)
        known = torch.isfinite(targets)
        if not bool(known.any()):  # keep the graph: every rank must run the same backward under DDP
            zero = predicted.sum() * 0.0
            return LossOutput(zero, {"mae": zero.detach()})
        scale = float(self.scale)
        loss = F.smooth_l1_loss(predicted[known], targets[known] / scale, beta=self.delta / scale)
        mae = ((predicted[known] * scale - targets[known]).abs().mean()).detach()
        return LossOutput(loss, {"mae": mae})

    def extra_repr(self) -> str:
        return f"scale={float(self.scale)}, delta={self.delta}"


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
    if weights_path(path).is_file():
        return path
    latest = CheckpointStore(checkpoints_dir(path)).latest() if path.is_dir() else None
    if latest is None:
        raise ConfigError(f"quality model {os.fspath(path)!r}: not a checkpoint folder (model.pt, objective.pt, "
                          "config.yaml) nor a training run folder with checkpoints")
    return latest


def _quality_config(folder: Path) -> TrainConfig:
    from fr_train.config import load_train_config  # fr_train.config imports the objective, which imports this

    config = config_path(folder)
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
    _load(backbone, load_tensors(weights_path(folder)), weights_path(folder))
    objective = load_tensors(folder / "objective.pt")
    head = {k[len(QUALITY_PREFIX):]: v for k, v in objective.items() if k.startswith(QUALITY_PREFIX)}
    _load(regression, head, folder / "objective.pt")
    spec = {"checkpoint": os.fspath(folder), "model": cfg.model.name, "target": cfg.objective.target_column,
            "model_sha256": file_sha256(weights_path(folder)),
            "objective_sha256": file_sha256(folder / "objective.pt")}
    return QualityModel(backbone, regression).eval(), spec


def _load(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(path, "", f"does not match the quality model's {type(module).__name__}: "
                        f"{str(exc).splitlines()[0]}") from None
