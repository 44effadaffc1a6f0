"""Parquet contracts of a mining run folder (validated on write and read with ``fr_data.io.parquet``).

Every column is documented in ``manifests/README.md``. Tables may carry extra columns after the declared
ones (attribute columns joined in by the user).
"""

from __future__ import annotations

import pyarrow as pa

#: The columns mining needs from ``EMB/index.parquet`` (the embed engineer's INDEX_SCHEMA has more).
EMB_INDEX_REQUIRED = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
])

#: One row per label of the input index.
CLASSES_SCHEMA = pa.schema([
    pa.field("label", pa.int64(), nullable=False),
    pa.field("n", pa.int64(), nullable=False),
    pa.field("n_invalid", pa.int64(), nullable=False),
    pa.field("spread", pa.float32()),
    pa.field("nearest_label", pa.int64()),
    pa.field("nearest_cos", pa.float32()),
    pa.field("neighbour_mix", pa.float32()),
    pa.field("merge_candidate", pa.bool_(), nullable=False),
    pa.field("group", pa.string()),
])

#: One row per input embedding row, in the order of ``EMB/index.parquet``.
MINED_SAMPLES_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
    pa.field("vector_ok", pa.bool_(), nullable=False),
    pa.field("center_cos", pa.float32()),
    pa.field("nearest_other_label", pa.int64()),
    pa.field("nearest_other_cos", pa.float32()),
    pa.field("margin", pa.float32()),
    pa.field("knn_agreement", pa.float32()),
    pa.field("suspect_mislabel", pa.bool_(), nullable=False),
    pa.field("suspected_label", pa.int64()),
    pa.field("duplicate_of", pa.string()),
    pa.field("duplicate_kind", pa.string()),
    pa.field("duplicate_cos", pa.float32()),
    pa.field("quality_sdd", pa.float32()),
    pa.field("quality_cr", pa.float32()),
    pa.field("instance_fpr", pa.float32()),
    pa.field("difficulty", pa.float32()),
    pa.field("split", pa.string()),
    pa.field("resolution", pa.float32()),
    pa.field("resolution_bin", pa.string()),
    pa.field("flip_cos", pa.float32()),
    pa.field("pose_bin", pa.string()),
    pa.field("group", pa.string()),
])

#: Teacher (easy) and student (hard) pairs for DDL / OT training.
PAIRS_SCHEMA = pa.schema([
    pa.field("key_a", pa.string(), nullable=False),
    pa.field("key_b", pa.string(), nullable=False),
    pa.field("label_a", pa.int64(), nullable=False),
    pa.field("label_b", pa.int64(), nullable=False),
    pa.field("cos", pa.float32(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("pose_bin_a", pa.string()),
    pa.field("pose_bin_b", pa.string()),
    pa.field("resolution_bin_a", pa.string()),
    pa.field("resolution_bin_b", pa.string()),
])

#: FPR per group at one global threshold (bias report).
GROUPS_SCHEMA = pa.schema([
    pa.field("group", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("n_samples", pa.int64(), nullable=False),
    pa.field("n_classes", pa.int64(), nullable=False),
    pa.field("fpr", pa.float64()),
    pa.field("fpr_ratio", pa.float64()),
])

#: How many classes / samples each candidate threshold flags.
SWEEP_SCHEMA = pa.schema([
    pa.field("threshold", pa.string(), nullable=False),
    pa.field("value", pa.float64(), nullable=False),
    pa.field("flagged", pa.int64(), nullable=False),
    pa.field("unit", pa.string(), nullable=False),
    pa.field("is_default", pa.bool_(), nullable=False),
])

PAIR_KINDS = ("easy_pos", "hard_pos", "hard_neg")
SPLITS = ("easy", "medium", "hard")
DUPLICATE_KINDS = ("same_class", "cross_class")
