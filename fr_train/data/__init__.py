"""Training data from shards and mining manifests: selection and relabelling, a DDP-safe stream,
the DDL/OT batch composer and augmentation.

Entry point: ``build_train_data(cfg, rank=r, world_size=w) -> TrainData``; iterate it per epoch after
``set_epoch(e)``: it yields :class:`ImageBatch` es, ``batches_per_epoch`` of them on every rank.
"""

from fr_train.data.batch import Branch, ImageBatch
from fr_train.data.config import (AugmentConfig, ComposerConfig, DataConfig, HardBranchConfig,
                                  SelectionConfig)
from fr_train.data.pipeline import TrainData, build_train_data

__all__ = ["AugmentConfig", "Branch", "ComposerConfig", "DataConfig", "HardBranchConfig", "ImageBatch",
           "SelectionConfig", "TrainData", "build_train_data"]
