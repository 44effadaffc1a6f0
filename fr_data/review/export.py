"""A curator's decisions turned into file operations on the source data set: which files to delete and
which to move to another identity.

``hardmine export --review review.csv --shards S --out list.txt`` reads the decisions
(:mod:`fr_data.folders.review_file`) and the shard manifest's provenance columns (``source_path``,
``identity``: :data:`fr_data.folders.shard_folder.PROVENANCE_SCHEMA`) and writes:

* ``list.txt``: the ``source_path`` of every ``drop`` decision, one per line, sorted (paths relative to
  the image folder that was sharded, or ``train.rec#KEY`` for RecordIO);
* ``relabel.csv`` beside it: ``source_path,identity,new_identity,label,new_label`` for every image whose
  training label the review changes: each image a ``relabel:L`` decision moves to label ``L``, and every
  image of a label that a ``merge:A:B`` decision folds into another one. As in training, relabels apply
  first (:func:`fr_data.review.decisions.apply_relabels`) and merged labels then join the group's smallest
  label (:func:`fr_data.review.decisions.merge_representatives`), so an image relabelled into a merged
  label lands on the group's label; ``label``/``identity`` are the image's own in the shards. Dropped
  images are not listed (they are deleted).

Every key must be in the shards, a merge row's key must carry label ``A`` there (the checks training
makes) and a ``relabel:L`` row's label ``L`` must have a sample (its identity names the target folder), so
a review of another data set is refused naming the file and line.
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
from fr_data.review.decisions import apply_merges, apply_relabels, merge_representatives, positions

RELABEL_FILE = "relabel.csv"
RELABEL_HEADER = ("source_path", "identity", "new_identity", "label", "new_label")


@dataclass
class FileActions:
    """What a review means for the source files.

    Attributes:
        delete: ``source_path`` of each dropped image, sorted.
        relabel: ``(source_path, identity, new_identity, label, new_label)`` per image moved by a
            ``relabel:L`` decision or of a merged label, sorted by path.
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
        DataError: a decided key the shards do not hold, a merge row that does not fit them, or a
            relabel row to a label without a sample (file and line of the review named).
    """
    keys = np.asarray(provenance.column("key").to_pylist(), dtype=str)
    labels = provenance.column("label").to_numpy()
    paths = provenance.column("source_path").to_pylist()
    identities = provenance.column("identity").to_pylist()
    drops = [d for d in review.decisions if d.kind == "sample" and d.action == "drop"]
    dropped = positions(review, drops, keys)
    delete = sorted(paths[i] for i in dropped.tolist() if paths[i] is not None)
    named = {int(label): identities[i] for label, i in zip(*np.unique(labels, return_index=True))}
    _check_relabel_targets(review, named)
    merges, _ = apply_merges(review, keys, labels, [])
    reps = merge_representatives(merges)
    relabelled, _ = apply_relabels(review, keys, labels)
    final = np.asarray([reps.get(int(v), int(v)) for v in relabelled], dtype=np.int64)
    moved = np.setdiff1d(np.flatnonzero(final != labels), dropped)
    relabel = sorted((paths[i], identities[i], named[int(final[i])], int(labels[i]), int(final[i]))
                     for i in moved.tolist() if paths[i] is not None)
    return FileActions(delete, relabel)


def _check_relabel_targets(review: Review, named: dict[int, str]) -> None:
    """Refuse a ``relabel:L`` row whose label ``L`` has no sample: no identity folder to move it to."""
    for d in review.samples("relabel"):
        if d.label not in named:
            raise DataError(review.path, f"line {d.line}", f"relabel to label {d.label}, which has no sample in "
                                                           "the shards")


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

