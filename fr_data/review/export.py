"""A curator's decisions turned into file operations on the source data set: which files to delete and
which to move to another identity.

``hardmine export --review review.csv --shards S --out list.txt`` reads the decisions
(:mod:`fr_data.folders.review_file`) and the shard manifest's provenance columns (``source_path``,
``identity``: :data:`fr_data.folders.shard_folder.PROVENANCE_SCHEMA`) and writes:

* ``list.txt``: the ``source_path`` of every ``drop`` decision, one per line, sorted (paths relative to
  the image folder that was sharded, or ``train.rec#KEY`` for RecordIO);
* ``relabel.csv`` beside it: ``source_path,identity,new_identity,label,new_label`` for every image of a
  label that a ``merge:A:B`` decision folds into another one. Merged labels join the group's smallest label,
  as training merges them (:func:`fr_data.review.decisions.merge_representatives`); dropped images are not
  listed (they are deleted).

Every key must be in the shards and a merge row's key must carry label ``A`` there (the checks training
makes), so a review of another data set is refused naming the file and line.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fr_data.folders.review_file import Review
from fr_data.folders.shard_folder import read_provenance, samples_path
from fr_data.io.atomic import atomic_write_text
from fr_data.io.errors import DataError
from fr_data.review.decisions import apply_merges, merge_representatives, positions

RELABEL_FILE = "relabel.csv"
RELABEL_HEADER = ("source_path", "identity", "new_identity", "label", "new_label")


@dataclass
class FileActions:
    """What a review means for the source files.

    Attributes:
        delete: ``source_path`` of each dropped image, sorted.
        relabel: ``(source_path, identity, new_identity, label, new_label)`` per image of a merged label,
            sorted by path.
    """

    delete: list[str]
    relabel: list[tuple[str, str, str, int, int]]


def manifest_provenance(shards: str | os.PathLike) -> pa.Table:
    """``key, label, source_path, identity`` of a shard folder (or its ``samples.parquet``), sorted by key.

    Raises:
        DataError: the manifest predates the provenance columns (reshard to get them).
    """
    path = Path(shards)
    path = samples_path(path) if path.is_dir() else path
    table = read_provenance(path)
    if table is None:
        raise DataError(path, "", "has no source_path/identity columns (sharded before they existed): "
                                  "shard the data set again to export file paths")
    return table.sort_by("key")


def file_actions(review: Review, provenance: pa.Table) -> FileActions:
    """The files to delete and to relabel for ``review`` over the shard manifest ``provenance``
    (:func:`manifest_provenance`).

    Raises:
        DataError: a decided key the shards do not hold, or a merge row that does not fit them (file and
            line of the review named).
    """
    keys = np.asarray(provenance.column("key").to_pylist(), dtype=str)
    labels = provenance.column("label").to_numpy()
    paths = provenance.column("source_path").to_pylist()
    identities = provenance.column("identity").to_pylist()
    drops = [d for d in review.decisions if d.kind == "sample" and d.action == "drop"]
    dropped = positions(review, drops, keys)
    delete = sorted(paths[i] for i in dropped.tolist() if paths[i] is not None)
    merges, _ = apply_merges(review, keys, labels, [])
    reps = merge_representatives(merges)
    named = {int(label): identities[i] for label, i in zip(*np.unique(labels, return_index=True))}
    moved = np.flatnonzero(np.asarray([reps.get(int(v), int(v)) != int(v) for v in labels], dtype=bool))
    moved = np.setdiff1d(moved, dropped)
    relabel = sorted((paths[i], identities[i], named[reps[int(labels[i])]], int(labels[i]), reps[int(labels[i])])
                     for i in moved.tolist() if paths[i] is not None)
    return FileActions(delete, relabel)


def write_file_actions(actions: FileActions, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``out`` (the paths to delete, one per line) and ``relabel.csv`` beside it, each atomically."""
    out = Path(out)
    atomic_write_text(out, "".join(f"{p}\n" for p in actions.delete))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(RELABEL_HEADER)
    writer.writerows(actions.relabel)
    relabel = out.parent / RELABEL_FILE
    atomic_write_text(relabel, text.getvalue())
    return out, relabel

