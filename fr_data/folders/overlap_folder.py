"""The overlap folder of ``hardmine overlap``: which training classes share identities with evaluation sets,
and which training images are evaluation images.

Layout of ``DIR`` (built in a staging folder, renamed when complete: :mod:`fr_data.io.publish`)::

    DIR/overlap.parquet          one row per (evaluation image, training class or image) match (OVERLAP_SCHEMA)
    DIR/overlap_classes.parquet  one row per (overlapping training class, evaluation set) (CLASSES_SCHEMA)
    DIR/overlap.json             inputs, model, the thresholds and how they were obtained, counts per set

``match`` is ``identity`` (the image's identity, or the image itself when its set has no identities,
overlaps the training class ``label``: cosine above the identity threshold) or ``image`` (the training
image ``train_key`` of class ``label`` is the same photo: confirmed by the pixel check, ``pixel_sim``, when
both images are at hand, else cosine at or above the duplicate threshold; or the same bytes). Training
with ``data.selection.exclude_overlap: DIR`` drops every sample of the classes in ``overlap_classes.parquet``
and every training image named by an ``image`` row (:func:`excluded`). Torch-free.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fr_data.io.atomic import atomic_write_text
from fr_data.io.errors import DataError
from fr_data.io.jsonfile import read_json_object
from fr_data.io.parquet import read_table, write_table

__all__ = ["CLASSES_FILE", "CLASSES_SCHEMA", "INFO_FILE", "MATCHES", "OVERLAP_FILE", "OVERLAP_OPTIONAL", "OVERLAP_SCHEMA",
           "classes_table", "excluded", "is_overlap_folder", "read_classes", "read_info", "read_overlap", "write_info",
           "write_tables"]

OVERLAP_FILE = "overlap.parquet"
CLASSES_FILE = "overlap_classes.parquet"
INFO_FILE = "overlap.json"
MATCHES = ("identity", "image")

#: One row per match (sorted by eval_set, eval_index, match, rank).
OVERLAP_SCHEMA = pa.schema([
    pa.field("eval_set", pa.string(), nullable=False),  # the evaluation set's name (overlap.json: inputs)
    pa.field("eval_index", pa.int64(), nullable=False),  # the image's position in its set
    pa.field("eval_key", pa.string(), nullable=False),  # pack index, shard key, relative path or index key
    pa.field("eval_identity", pa.string(), nullable=True),  # null for a set without identities
    pa.field("label", pa.int64(), nullable=False),  # the training class matched
    pa.field("cos", pa.float32(), nullable=False),  # image to class centre (identity), image to image (image)
    pa.field("match", pa.string(), nullable=False),  # identity | image
    pa.field("rank", pa.int32(), nullable=False),  # place among the query's top k (0: found by bytes only)
    pa.field("train_key", pa.string(), nullable=True),  # the training image of an image match, else null
    pa.field("same_bytes", pa.bool_(), nullable=False),  # an image match with the same sha256
])

#: Columns of overlap.parquet that folders written before them lack (read when present).
OVERLAP_OPTIONAL = pa.schema([
    pa.field("pixel_sim", pa.float32(), nullable=True),  # an image match's pixel-check similarity (null: not checked)
])

#: One row per (training class, evaluation set) that overlaps by identity.
CLASSES_SCHEMA = pa.schema([
    pa.field("label", pa.int64(), nullable=False),
    pa.field("eval_set", pa.string(), nullable=False),
    pa.field("eval_images", pa.int64(), nullable=False),  # evaluation images listed against the class
    pa.field("max_cos", pa.float32(), nullable=False),  # their largest cosine to the class centre
    pa.field("mean_cos", pa.float32(), nullable=False),  # and the mean
])


def is_overlap_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds an overlap.parquet and an overlap.json."""
    folder = Path(folder)
    return (folder / OVERLAP_FILE).is_file() and (folder / INFO_FILE).is_file()


def classes_table(overlap: pa.Table) -> pa.Table:
    """``overlap_classes`` from the identity rows of ``overlap``."""
    rows = overlap.filter(pc.equal(overlap.column("match"), "identity"))
    grouped = rows.group_by(["label", "eval_set"]).aggregate(
        [("eval_index", "count_distinct"), ("cos", "max"), ("cos", "mean")])
    table = pa.table({
        "label": grouped.column("label"), "eval_set": grouped.column("eval_set"),
        "eval_images": grouped.column("eval_index_count_distinct").cast(pa.int64()),
        "max_cos": grouped.column("cos_max").cast(pa.float32()),
        "mean_cos": grouped.column("cos_mean").cast(pa.float32())})
    return table.sort_by([("eval_set", "ascending"), ("max_cos", "descending"), ("label", "ascending")])


def write_tables(folder: str | os.PathLike, overlap: pa.Table) -> pa.Table:
    """Write overlap.parquet and the overlap_classes.parquet derived from it; return the classes."""
    folder = Path(folder)
    overlap = overlap.sort_by([("eval_set", "ascending"), ("eval_index", "ascending"), ("match", "ascending"),
                               ("rank", "ascending"), ("label", "ascending")])
    write_table(overlap, folder / OVERLAP_FILE, OVERLAP_SCHEMA, optional=OVERLAP_OPTIONAL)
    classes = classes_table(overlap)
    write_table(classes, folder / CLASSES_FILE, CLASSES_SCHEMA)
    return classes


def write_info(folder: str | os.PathLike, info: dict[str, Any]) -> None:
    """Write ``folder/overlap.json`` atomically."""
    atomic_write_text(Path(folder) / INFO_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")


def read_overlap(folder: str | os.PathLike) -> pa.Table:
    """Read and validate ``folder/overlap.parquet``."""
    return read_table(Path(folder) / OVERLAP_FILE, OVERLAP_SCHEMA, optional=OVERLAP_OPTIONAL)


def read_classes(folder: str | os.PathLike) -> pa.Table:
    """Read and validate ``folder/overlap_classes.parquet``."""
    return read_table(Path(folder) / CLASSES_FILE, CLASSES_SCHEMA)


def read_info(folder: str | os.PathLike) -> dict[str, Any]:
    """``folder/overlap.json``; a DataError naming it when absent."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise DataError(path, "", "not an overlap folder (no overlap.json): write one with hardmine overlap")
    return read_json_object(path)


def excluded(folder: str | os.PathLike) -> tuple[set[int], set[str]]:
    """The training labels of the overlapping classes and the keys of the leaked training images."""
    read_info(folder)
    labels = set(read_classes(folder).column("label").to_pylist())
    overlap = read_overlap(folder)
    images = overlap.filter(pc.equal(overlap.column("match"), "image"))
    return labels, {k for k in images.column("train_key").to_pylist() if k is not None}
