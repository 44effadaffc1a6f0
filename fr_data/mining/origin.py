"""Does a shard manifest belong to these embeddings, or to this mining run?

Keys are zero-padded source indices, so two data sets of one size share every key: a manifest of another
data set must be refused, not joined on keys. Embedding records the shard folder's fingerprint
(:func:`fr_data.folders.shard_folder.fingerprint`) in ``EMB/run.json`` as ``shards_fingerprint``; mining
copies that file into its ``run.json`` (``embedding_run``) and records the fingerprint of ``--samples``
itself (``inputs.samples_fingerprint``).

* Mining (:func:`check_samples_of_embeddings`): the manifest holds exactly the embedded keys with the same
  labels (when it has a ``label`` column), and, when the embeddings recorded a fingerprint and the manifest's folder has one, the two are
  equal. An older EMB folder without the fingerprint gets the keys, count and labels check only.
* The review page (:func:`check_shards_of_run`): the fingerprints recorded in the run equal the shard
  folder's; without a recorded fingerprint, the keys the run shares with the shards carry the same labels
  and a run with rows shares at least one key (keys the shards lack stay listed as missing on the page).

A mismatch is one DataError naming both files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fr_data.folders import run_folder as rf
from fr_data.folders.embeddings_folder import INDEX_FILE, RUN_FILE, Embeddings
from fr_data.folders.shard_folder import LISTING_FILE, fingerprint, read_input_samples, samples_path
from fr_data.io.errors import DataError


def recorded_fingerprints(run_info: dict[str, Any]) -> list[str]:
    """The shard folder fingerprints a run.json records (its own ``--samples`` and its embeddings')."""
    inputs = run_info.get("inputs") if isinstance(run_info.get("inputs"), dict) else {}
    embedding = run_info.get("embedding_run") if isinstance(run_info.get("embedding_run"), dict) else {}
    found = [inputs.get("samples_fingerprint"), embedding.get("shards_fingerprint"),
             run_info.get("shards_fingerprint")]
    return [f for f in found if isinstance(f, str)]


def _check_fingerprint(folder: Path, recorded: list[str], owner: Path) -> bool:
    """True when ``folder`` has a fingerprint and a recorded one exists (then they must all agree)."""
    current = fingerprint(folder)
    if current is None or not recorded:
        return False
    if any(f != current for f in recorded):
        raise DataError(folder / LISTING_FILE, "",
                        f"shard folder fingerprint {current[:16]} differs from {recorded[0][:16]} recorded in "
                        f"{owner}: these shards are not the data set it was made from")
    return True


def _sorted_by_key(table: pa.Table, columns: list[str]) -> pa.Table:
    table = table.select(columns)
    return table.take(pc.sort_indices(table, [("key", "ascending")]))


def check_samples_of_embeddings(samples: str | os.PathLike, emb: Embeddings) -> str | None:
    """Refuse a shard manifest ``samples`` that is not the one ``emb`` was embedded from (module docstring).

    Returns:
        The fingerprint of the manifest's shard folder (None when it has no ``shards.json``).

    Raises:
        DataError: naming ``samples`` and the EMB file it disagrees with.
    """
    samples = Path(samples)
    _check_fingerprint(samples.parent, recorded_fingerprints(emb.run_info), emb.folder / RUN_FILE)
    columns = ["key", "label"] if "label" in pq.read_schema(samples).names else ["key"]
    ours = _sorted_by_key(read_input_samples(samples, columns), columns)
    theirs = _sorted_by_key(emb.index, columns)
    index = emb.folder / INDEX_FILE
    if ours.num_rows != theirs.num_rows:
        raise DataError(samples, "", f"{ours.num_rows} samples but {index} has {theirs.num_rows}: not the "
                        "manifest these embeddings were made from")
    for column, what in (("key", "key"), ("label", "label of key"))[:len(columns)]:
        differ = pc.invert(pc.equal(ours.column(column), theirs.column(column)))
        rows = pc.indices_nonzero(differ)
        if len(rows):
            row = rows[0].as_py()
            key = ours.column("key")[row].as_py()
            raise DataError(samples, f"key {key}", f"{what} {key} differs from {index}: not the manifest "
                            "these embeddings were made from")
    return fingerprint(samples.parent)


def check_shards_of_run(shards: str | os.PathLike, run: str | os.PathLike) -> None:
    """Refuse a shard folder ``shards`` that is not the one mining run ``run`` was made from.

    Raises:
        DataError: naming the shard folder's file and the run's file it disagrees with.
    """
    shards, run = Path(shards), Path(run)
    info_path = run / rf.RUN_FILE
    info = rf.read_run_info(run) if info_path.is_file() else {}
    if _check_fingerprint(shards, recorded_fingerprints(info), info_path):
        return
    manifest = samples_path(shards)
    if not manifest.is_file():
        return
    run_rows = rf.read(run, "samples", columns=["key", "label"])
    if run_rows.num_rows == 0:
        return
    shard_rows = read_input_samples(manifest, ["key", "label"]).rename_columns(["key", "shard_label"])
    shared = run_rows.join(shard_rows, "key", join_type="inner")
    if shared.num_rows == 0:
        raise DataError(manifest, "", f"holds none of the keys of {rf.table_path(run, 'samples')}: not the "
                        "shard folder this run was mined from")
    differ = shared.filter(pc.not_equal(shared.column("label"), shared.column("shard_label")))
    if differ.num_rows:
        key = min(differ.column("key").to_pylist())
        raise DataError(manifest, f"key {key}", f"label differs from {rf.table_path(run, 'samples')}: not "
                        "the shard folder this run was mined from")
