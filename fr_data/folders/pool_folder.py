"""The pooled-experiment folder of ``hardmine experiment-pool``: several experiment folders of one recipe,
each with its own pretrained backbone, summarised together.

Layout of ``POOL``::

    POOL/pool.yaml        the members (folder, pretrained backbone's sha256, seeds) and the shared recipe
    POOL/pool.parquet     one row per (member, split, arm, pack): the metric's mean over fine-tuning seeds
                          and its gain over ``baseline`` (POOL_SCHEMA)
    POOL/pool.md          the gains over backbones (mean, interval, each backbone) and the verdict
    POOL/figures/*.png    the gain per pack and arm, one dot per backbone

The folder is built in a staging folder and renamed to ``POOL`` once complete (``fr_data.io.publish``).
Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from fr_data.io.parquet import read_table, write_table

__all__ = ["CONFIG", "TABLE", "REPORT", "FIGURES", "POOL_SCHEMA", "pool_table", "write_pool_table",
           "read_pool_table"]

CONFIG = "pool.yaml"
TABLE = "pool.parquet"
REPORT = "pool.md"
FIGURES = "figures"

#: One row per (member, split, arm, pack).
POOL_SCHEMA = pa.schema([
    pa.field("member", pa.string(), nullable=False),  # the experiment folder, as given
    pa.field("backbone", pa.string(), nullable=False),  # sha256 of its pretrained model.pt
    pa.field("split", pa.string(), nullable=False),  # validation | test
    pa.field("arm", pa.string(), nullable=False),
    pa.field("pack", pa.string(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),  # a results column, e.g. tpr_at_fpr_1e_2
    pa.field("seeds", pa.int64(), nullable=False),  # fine-tuning seeds averaged
    pa.field("value", pa.float64()),  # mean over those seeds
    pa.field("gain", pa.float64()),  # value - baseline's value in the same member, split and pack
])


def pool_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows with the schema's columns, sorted by member, split, arm and pack."""
    rows = sorted(rows, key=lambda r: (str(r["member"]), str(r["split"]), str(r["arm"]), str(r["pack"])))
    return pa.table({f.name: [r[f.name] for r in rows] for f in POOL_SCHEMA}, schema=POOL_SCHEMA)


def write_pool_table(folder: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Validate and write ``POOL/pool.parquet`` atomically."""
    return write_table(pool_table(rows), Path(folder) / TABLE, POOL_SCHEMA)


def read_pool_table(folder: str | os.PathLike) -> pa.Table:
    """``POOL/pool.parquet``, validated."""
    return read_table(Path(folder) / TABLE, POOL_SCHEMA)
