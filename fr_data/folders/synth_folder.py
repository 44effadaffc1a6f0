"""The synthetic data folder of ``hardmine synth``: its file names and its completion marker.

Layout (written by :func:`fr_data.synth.generate`, each file atomically, ``synth.json`` last)::

    SYN/train.rec, train.idx   the training images (InsightFace RecordIO)
    SYN/property               ``classes,112,112`` (the RecordIO set's class count)
    SYN/attributes.parquet     the ground truth of every training image (``fr_data.synth.dataset``)
    SYN/synth_*.bin            held-out verification packs (one per ``fr_data.synth.PACKS`` entry)
    SYN/synth.json             parameters, counts, packs and the sha256 of every file: the folder is
                               complete when it exists
    PACKS/packs.json           a folder of packs only (:func:`fr_data.synth.generate_packs`), written last

The RecordIO names are the InsightFace folder convention of ``fr_data.formats.recordio.writer``.
Torch-free plain file layout; the data side and the pipelines name these files only through here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fr_data.formats.recordio.writer import IDX_FILE, PROPERTY_FILE, REC_FILE

__all__ = ["REC_FILE", "IDX_FILE", "PROPERTY_FILE", "ATTRIBUTES_FILE", "INFO_FILE", "PACKS_INFO_FILE",
           "pack_file", "attributes_path", "info_path", "read_info"]

ATTRIBUTES_FILE = "attributes.parquet"
INFO_FILE = "synth.json"
PACKS_INFO_FILE = "packs.json"


def pack_file(name: str) -> str:
    """The file name of verification pack ``name`` (``synth_pose`` -> ``synth_pose.bin``)."""
    return f"{name}.bin"


def attributes_path(folder: str | os.PathLike) -> Path:
    """``SYN/attributes.parquet``."""
    return Path(folder) / ATTRIBUTES_FILE


def info_path(folder: str | os.PathLike) -> Path:
    """``SYN/synth.json`` (present only once the set is complete)."""
    return Path(folder) / INFO_FILE


def read_info(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The ``synth.json`` of a complete set, or None when the set is absent or incomplete."""
    path = info_path(folder)
    return json.loads(path.read_text()) if path.is_file() else None
