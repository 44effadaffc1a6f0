"""What the mining stages hand each other: the geometry of stages 1-2 and the findings of stage 4.

``fr_data.mining.run`` produces them; ``fr_data.mining.tables`` turns them into the run folder's tables
(the columns each signal of :mod:`fr_data.folders.run_signals` declares). Arrays are indexed by embedding
row (per sample) or by class id (per class; ``ClassIndex.labels`` maps ids to labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fr_data.mining.calibration import Calibration
from fr_data.mining.centres import Centres, ClassIndex
from fr_data.mining.config import MiningConfig
from fr_data.mining.inputs import Validity
from fr_data.mining.quality import UnifiedThreshold


@dataclass
class Geometry:
    """Results of stages 1-2 (class ids, not labels)."""

    cindex: ClassIndex
    centres: Centres
    validity: Validity
    center_cos: np.ndarray
    nearest_other: np.ndarray
    nearest_other_cos: np.ndarray
    candidates: np.ndarray
    instance_fpr: np.ndarray
    #: the CIFP unified threshold behind ``instance_fpr`` (the centre search's negatives are dropped once
    #: these are known)
    fpr_threshold: UnifiedThreshold
    class_nearest: np.ndarray
    class_nearest_cos: np.ndarray
    #: the rows ``[a, b)`` the per-sample arrays above cover (a rank's share; every row in one process)
    span: tuple[int, int]


@dataclass
class Findings:
    """Per-sample results of stage 4 plus the run-level numbers behind them.

    ``cols`` cover the rows ``span`` (a rank's share; every row in one process). ``class_of``, ``eligible``
    and ``same_person`` are whole on every rank; ``class_mix``, ``calibration`` and ``pixel_check`` are
    rank 0's (None on the others)."""

    cols: dict[str, np.ndarray]
    class_of: np.ndarray
    eligible: np.ndarray
    threshold: UnifiedThreshold
    strategy: str
    same_person: np.ndarray
    class_mix: np.ndarray
    calibration: dict[str, Calibration]
    config: MiningConfig  # the config with the calibrated thresholds in force
    pixel_check: dict[str, Any] | None = None  # run.json: duplicates_pixel_check (None: not run)
    span: tuple[int, int] = (0, 0)
