"""The training-run folder of ``hardmine train``: its file names, read without torch.

Layout (written by ``fr_train.trainer``; a checkpoint's other files are ``fr_train.checkpoints.resume``'s)::

    RUN/config.yaml                      the resolved training config
    RUN/metrics.jsonl                    one JSON record per logged step (``fr_train.logs``)
    RUN/checkpoints/step-*/model.pt      the backbone's state dict at that step
    RUN/checkpoints/step-*/config.yaml   the resolved training config again, beside the weights

Plain file layout: the data side (which never imports ``fr_train``) and the pipelines name these files
only through here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_FILE", "METRICS_FILE", "CHECKPOINTS_DIR", "WEIGHTS_FILE", "checkpoints_dir", "weights_path",
           "config_path", "metrics_path", "last_metrics"]

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
WEIGHTS_FILE = "model.pt"


def checkpoints_dir(run: str | os.PathLike) -> Path:
    """``RUN/checkpoints``."""
    return Path(run) / CHECKPOINTS_DIR


def weights_path(checkpoint: str | os.PathLike) -> Path:
    """The backbone weights of a checkpoint folder (or of any folder holding ``model.pt``)."""
    return Path(checkpoint) / WEIGHTS_FILE


def config_path(folder: str | os.PathLike) -> Path:
    """The ``config.yaml`` of a run or of a checkpoint folder."""
    return Path(folder) / CONFIG_FILE


def metrics_path(run: str | os.PathLike) -> Path:
    """``RUN/metrics.jsonl``."""
    return Path(run) / METRICS_FILE


def last_metrics(run: str | os.PathLike) -> dict[str, Any]:
    """Step, loss and throughput of the last record of ``metrics.jsonl`` that has a loss (None when none)."""
    path = metrics_path(run)
    last: dict[str, Any] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "loss" in record:
                last = record
    return {"steps": last.get("step"), "final_loss": last.get("loss"), "img_s": last.get("img_s")}
