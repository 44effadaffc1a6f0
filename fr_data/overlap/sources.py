"""Evaluation sets named on the ``hardmine overlap`` command line, read into one in-memory form.

A SPEC is one of:

* an InsightFace ``.bin`` verification pack (:mod:`fr_data.formats.verification`): images, no identities;
* a hardmine shard folder (``samples.parquet`` + ``shard-*.tar``): images, the shard labels as identities;
* an image folder: one sub-folder per identity (``ID/x.jpg``), or images directly in the folder (no
  identities);
* an embeddings folder (``embeddings.npy`` + ``index.parquet``) made with the training set's model:
  vectors, the index labels as identities, no image bytes (so no byte-hash match and no thumbnails).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fr_data.folders import embeddings_folder as ef
from fr_data.folders import shard_folder as sf
from fr_data.formats.images import is_image_name
from fr_data.formats.verification import check_images, load_bin
from fr_data.io.errors import DataError

__all__ = ["EvalSet", "read_eval_set"]

KINDS = ("bin", "shards", "images", "embeddings")


@dataclass
class EvalSet:
    """One evaluation set.

    Attributes:
        name: its name in the outputs (the file or folder name, made unique by the caller).
        path: the SPEC as given.
        kind: one of ``KINDS``.
        keys: one key per image (pack index, shard key, relative path or index key).
        identities: the identity of each image, or None when the set has none (a pack, flat images).
        images: encoded image bytes per image, or None for an embeddings folder.
        vectors: unit rows (an embeddings folder), or None until embedded.
        emb_spec: the ``run.json`` of an embeddings folder (to check its model), else None.
    """

    name: str
    path: Path
    kind: str
    keys: list[str]
    identities: list[str] | None
    images: list[bytes] | None
    vectors: np.ndarray | None = None
    emb_spec: dict | None = None

    def __len__(self) -> int:
        return len(self.keys)


def read_eval_set(path: str | os.PathLike) -> EvalSet:
    """Read the evaluation set at ``path`` (kind recognised from its files).

    Raises:
        DataError: naming the file: not a pack, a folder that is none of the kinds, an empty set, an
            unreadable image file.
    """
    path = Path(path)
    if path.is_file():
        found = _read_pack(path)
    elif (path / ef.EMBEDDINGS_FILE).is_file():
        found = _read_embeddings(path)
    elif sf.samples_path(path).is_file():
        found = _read_shards(path)
    elif path.is_dir():
        found = _read_images(path)
    else:
        raise DataError(path, "", "evaluation set does not exist")
    if len(found) == 0:
        raise DataError(path, "", "evaluation set holds no images")
    return found


def _read_pack(path: Path) -> EvalSet:
    pack = load_bin(path)
    check_images(pack)
    return EvalSet(path.name, path, "bin", [str(i) for i in range(len(pack.images))], None, list(pack.images))


def _read_embeddings(path: Path) -> EvalSet:
    emb = ef.open_embeddings(path)
    vectors = np.asarray(emb.vectors, dtype=np.float32)
    norm = np.linalg.norm(vectors, axis=1)
    bad = np.flatnonzero(~np.isfinite(norm) | (norm < 1e-6))
    if len(bad):
        raise DataError(emb.array_path, f"row {int(bad[0])}", "zero or non-finite embedding")
    keys = emb.index.column("key").to_pylist()
    identities = [str(v) for v in emb.labels]
    return EvalSet(path.name, path, "embeddings", keys, identities, None, vectors / norm[:, None],
                   emb.run_info)


def _read_shards(path: Path) -> EvalSet:
    from fr_data.embed.images import read_shard

    keys, identities, images = [], [], []
    for shard in sf.list_shards(path):
        for key, label, data in read_shard(shard):
            keys.append(key)
            identities.append(str(label))
            images.append(data)
    return EvalSet(path.name, path, "shards", keys, identities, images)


def _read_images(path: Path) -> EvalSet:
    """Images directly in ``path`` (no identities) or in its sub-folders (one identity each), not both."""
    entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    flat = [p for p in entries if p.is_file() and is_image_name(p.name)]
    folders = [p for p in entries if p.is_dir()]
    if flat and folders:
        raise DataError(path, "", "holds both images and sub-folders: use one identity folder per person, "
                        "or images only")
    if flat:
        return EvalSet(path.name, path, "images", [p.name for p in flat], None, [_read(p) for p in flat])
    keys, identities, images = [], [], []
    for folder in folders:
        for p in sorted(q for q in folder.iterdir() if q.is_file() and is_image_name(q.name)
                        and not q.name.startswith(".")):
            keys.append(f"{folder.name}/{p.name}")
            identities.append(folder.name)
            images.append(_read(p))
    return EvalSet(path.name, path, "images", keys, identities, images)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(path, "", f"cannot read image: {exc}") from exc
