"""Tiny shards and a tiny fake mining run folder for the training-data tests (and the training tests).

``make_tiny_data(tmp)`` writes ``tmp/shards`` (real shards, through ``fr_data.ingest.sharding.write_shards``) and
``tmp/run`` (a mining run written with the mining schemas), with hand-checkable structure. With the
defaults (6 classes x 6 images) image ``i`` of class ``c`` has source index ``6c + i`` and:

* ``split``: i in 0-2 ``easy``, 3 ``medium``, 4-5 ``hard``; ``pose_bin``: i in 4-5 ``profile``,
  else ``frontal``; ``resolution_bin``: i == 5 ``low``, else ``high``;
* suspects: (0, 3) and (1, 4); duplicates: (2, 1) of (2, 0) same_class, (3, 2) of (4, 2) cross_class;
* classes 4 and 5 are merge candidates of each other (nearest_label 5 and 4);
* pairs per class: easy_pos (i0, i1), (i0, i2); hard_pos (i0, i4), (i1, i5); hard_neg (c i0, c+1 i0).

Images are 112 x 112 JPEGs whose colour encodes the class (``class_colour``) plus a per-image stripe.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from fr_data.folders.run_folder import CLASSES_SCHEMA, MINED_SAMPLES_SCHEMA, PAIRS_SCHEMA
from fr_data.folders.shard_folder import read_samples
from fr_data.ingest.plan import ShardOptions
from fr_data.ingest.sharding import write_shards
from fr_data.ingest.source import SourceRecord, read_each
from fr_data.io.parquet import write_table

SUSPECTS = ((0, 3), (1, 4))
DUPLICATES = (((2, 1), (2, 0), "same_class"), ((3, 2), (4, 2), "cross_class"))
MERGES = ((4, 5), (5, 4))


def class_colour(label: int) -> tuple[int, int, int]:
    """The background colour of class ``label``'s images (well separated for up to ~20 classes)."""
    return (40 + 37 * label) % 256, (200 - 53 * label) % 256, (90 + 71 * label) % 256


def face_jpeg(label: int, index: int, size: int = 112) -> bytes:
    """A deterministic JPEG: class colour background, a bright vertical stripe at an image-specific column."""
    pixels = np.empty((size, size, 3), np.uint8)
    pixels[:] = class_colour(label)
    column = (7 * index) % (size - 8)
    pixels[:, column:column + 6] = 255
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


class MemorySource:
    """A ``fr_data.ingest.source.Source`` over in-memory ``(label, jpeg)`` items (source index = position)."""

    def __init__(self, labels: list[int], path: Path):
        self.path = path
        self.labels = labels
        self.num_classes = max(labels) + 1

    def __len__(self) -> int:
        return len(self.labels)

    def indices(self) -> np.ndarray:
        return np.arange(len(self.labels), dtype=np.int64)

    def read(self, index: int) -> SourceRecord:
        return SourceRecord(int(index), self.labels[index], face_jpeg(self.labels[index], int(index)))

    def read_many(self, indices):
        return read_each(self, indices)

    def locate(self, index: int) -> tuple[Path, str]:
        return self.path, f"index {index}"

    def describe(self) -> dict:
        return {"kind": "memory", "count": len(self.labels)}


def make_shards(out: Path, labels: list[int], per_shard: int = 7, seed: int = 0) -> dict[int, str]:
    """Shard images labelled ``labels`` (source index = position) into ``out``; return source_index -> key."""
    source = MemorySource(labels, out.parent / "memory")
    write_shards(source, out, ShardOptions(per_shard=per_shard, seed=seed))
    table = read_samples(out, columns=["key", "source_index"])
    return dict(zip(table.column("source_index").to_pylist(), table.column("key").to_pylist()))


@dataclass
class TinyData:
    """Paths of the tiny data set and the key of image ``i`` of class ``c`` (``key[c, i]``)."""

    shards: Path
    run: Path
    key: dict[tuple[int, int], str]
    classes: int
    per_class: int

    def keys_where(self, predicate) -> set[str]:
        """Keys of the images ``(c, i)`` for which ``predicate(c, i)`` holds."""
        return {k for (c, i), k in self.key.items() if predicate(c, i)}


def _split(i: int) -> str:
    return "easy" if i <= 2 else "medium" if i == 3 else "hard"


def mined_samples(data: TinyData) -> pa.Table:
    """The fake mining ``samples.parquet`` of ``data`` (rules in the module docstring)."""
    rows = {f.name: [] for f in MINED_SAMPLES_SCHEMA}
    duplicates = {a: (b, kind) for a, b, kind in DUPLICATES}
    for (c, i), key in sorted(data.key.items(), key=lambda item: item[1]):
        dup = duplicates.get((c, i))
        values = {"key": key, "label": c, "vector_ok": True, "center_cos": 0.8 - 0.1 * i,
                  "suspect_mislabel": (c, i) in SUSPECTS, "split": _split(i), "difficulty": i / 10,
                  "suspected_label": (c + 1) % data.classes if (c, i) in SUSPECTS else None,
                  "duplicate_of": data.key[dup[0]] if dup else None,
                  "duplicate_kind": dup[1] if dup else None,
                  "pose_bin": "profile" if i >= 4 else "frontal",
                  "resolution_bin": "low" if i == 5 else "high"}
        for name, column in rows.items():
            column.append(values.get(name))
    return pa.table(rows, schema=MINED_SAMPLES_SCHEMA)


def mined_classes(data: TinyData) -> pa.Table:
    """The fake ``classes.parquet``: every class, with classes 4 and 5 merge candidates of each other."""
    merges = dict(MERGES)
    rows = [{"label": c, "n": data.per_class, "n_invalid": 0, "spread": 0.7,
             "nearest_label": merges.get(c, (c + 1) % data.classes),
             "nearest_cos": 0.9 if c in merges else 0.2, "merge_candidate": c in merges, "group": None}
            for c in range(data.classes)]
    return pa.Table.from_pylist(rows, schema=CLASSES_SCHEMA)


def mined_pairs(data: TinyData) -> pa.Table:
    """The fake ``pairs.parquet`` (easy_pos, hard_pos, hard_neg per class)."""
    rows = []
    for c in range(data.classes):
        spec = [((c, 0), (c, 1), "easy_pos"), ((c, 0), (c, 2), "easy_pos"), ((c, 0), (c, 4), "hard_pos"),
                ((c, 1), (c, 5), "hard_pos"), ((c, 0), ((c + 1) % data.classes, 0), "hard_neg")]
        for a, b, kind in spec:
            rows.append({"key_a": data.key[a], "key_b": data.key[b], "label_a": a[0], "label_b": b[0],
                         "cos": 0.5, "kind": kind})
    return pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA)


def make_tiny_data(tmp: Path, classes: int = 6, per_class: int = 6, per_shard: int = 7) -> TinyData:
    """Write ``tmp/shards`` and the fake mining run ``tmp/run``; see the module docstring."""
    tmp = Path(tmp)
    labels = [c for c in range(classes) for _ in range(per_class)]
    by_index = make_shards(tmp / "shards", labels, per_shard)
    key = {(c, i): by_index[c * per_class + i] for c in range(classes) for i in range(per_class)}
    data = TinyData(tmp / "shards", tmp / "run", key, classes, per_class)
    data.run.mkdir(parents=True)
    write_table(mined_samples(data), data.run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    write_table(mined_classes(data), data.run / "classes.parquet", CLASSES_SCHEMA)
    write_table(mined_pairs(data), data.run / "pairs.parquet", PAIRS_SCHEMA)
    meta = {"samples_manifest": str((data.shards / "samples.parquet").resolve())}
    (data.run / "run.json").write_text(json.dumps(meta))
    return data


def tiny_data_config(data: TinyData, **overrides) -> "DataConfig":
    """A :class:`~fr_train.data.config.DataConfig` over ``data`` (batch 4, no workers, composer off).

    ``overrides`` replace top-level fields (e.g. ``composer=ComposerConfig(enabled=True, identities=3,
    pairs=3)``, ``num_workers=2``).
    """
    from fr_train.data.config import DataConfig

    values = {"shards": str(data.shards), "run": str(data.run), "batch_size": 4, "num_workers": 0}
    values.update(overrides)
    return DataConfig(**values)
