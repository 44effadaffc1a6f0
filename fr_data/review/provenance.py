"""Where the images a review page shows came from: each shown key's file and each shown label's identity,
read from the shard manifest's provenance columns (``fr_data.folders.shard_folder.PROVENANCE_SCHEMA``).

The shard folder is the report's own input, so cards name their files even when the run was mined
without ``--samples``; a manifest written before the columns existed gives nothing (cards then show
labels and keys only).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from fr_data.folders.shard_folder import read_provenance


@dataclass
class Provenance:
    """Shown keys' files and shown labels' identity names.

    Attributes:
        paths: key -> ``source_path`` (``0000045/001.jpg``, ``train.rec#1234``).
        identities: label -> identity name (the identity folder; RecordIO: the label as text).
    """

    paths: dict[str, str] = field(default_factory=dict)
    identities: dict[int, str] = field(default_factory=dict)


def shown_provenance(manifest: str | os.PathLike, keys: Iterable[str]) -> Provenance:
    """The provenance of ``keys`` (the keys a page shows) in the shard manifest ``manifest``."""
    if not os.path.isfile(manifest):
        return Provenance()
    table = read_provenance(manifest)
    if table is None:
        return Provenance()
    rows = table.filter(pc.is_in(table.column("key"), value_set=pa.array(list(keys), pa.string())))
    out = Provenance()
    for key, label, path, identity in zip(*(rows.column(c).to_pylist() for c in
                                            ("key", "label", "source_path", "identity"))):
        if path is not None:
            out.paths[key] = path
        if identity is not None:
            out.identities.setdefault(label, identity)
    return out
