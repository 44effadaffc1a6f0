"""Image folders ``root/<identity>/<image>`` (WebFace, CASIA, VGGFace2 copies) as a
:class:`~fr_data.ingest.source.Source`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fr_data.formats.images import IMAGE_SUFFIXES, is_image_name
from fr_data.ingest.source import SourceRecord, check_image_bytes, read_each
from fr_data.io.errors import DataError


class ImageFolderSource:
    """``root/<identity>/<image>`` folders; identities labelled 0.. in sorted name order.

    Names starting with a dot are ignored. Everything else must fit the layout: a file directly
    under ``root``, a sub-folder inside an identity, a file without a ``.jpg``/``.jpeg``/``.png``
    extension or an identity with no images raises :class:`DataError` naming the path.
    ``source_index`` is the position in the sorted list of all images (identity, then file name).
    """

    def __init__(self, root: str | os.PathLike):
        self.path = Path(root)
        if not self.path.is_dir():
            raise DataError(self.path, "", "image folder not found")
        self.classes: list[str] = []
        files: list[str] = []
        counts: list[int] = []
        for identity in _visible_entries(self.path):
            if not identity.is_dir():
                raise DataError(identity, "", "expected only identity folders directly under the root")
            images = _identity_images(identity)
            self.classes.append(identity.name)
            files.extend(f"{identity.name}/{name}" for name in images)
            counts.append(len(images))
        if not self.classes:
            raise DataError(self.path, "", "no identity folders found")
        self._files = files
        self._labels = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self._files)

    def indices(self) -> np.ndarray:
        """``0 .. len-1`` as int64."""
        return np.arange(len(self._files), dtype=np.int64)

    def file_path(self, index: int) -> Path:
        """Path of the image at ``index``."""
        return self.path / self._files[index]

    def locate(self, index: int) -> tuple[Path, str]:
        """The image file of ``index`` and its locator, for error messages."""
        return self.file_path(index), f"index {index}"

    def read_many(self, indices: Sequence[int]) -> list[SourceRecord | DataError]:
        """:meth:`read` of each index (in ascending index order, so a shuffled shard is read as
        sequentially as the folder allows): per index the record or the :class:`DataError`."""
        return read_each(self, indices)

    def read(self, index: int) -> SourceRecord:
        """The validated image at position ``index``; :class:`DataError` if unreadable or not an image."""
        index = int(index)
        if not 0 <= index < len(self._files):
            raise DataError(self.path, f"index {index}", f"out of range [0, {len(self._files)})")
        path = self.file_path(index)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(path, f"index {index}", f"unreadable image: {exc.strerror or exc}") from None
        check_image_bytes(data, path, f"index {index}")
        return SourceRecord(index, int(self._labels[index]), data)

    def describe(self) -> dict:
        """Kind, root and counts (JSON-able)."""
        return {"kind": "image_folder", "root": str(self.path), "num_images": len(self),
                "num_classes": self.num_classes, "notes": []}


def _visible_entries(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise DataError(folder, "", f"cannot list folder: {exc.strerror or exc}") from None


def _identity_images(identity: Path) -> list[str]:
    names = []
    for entry in _visible_entries(identity):
        if entry.is_dir():
            reason = "nested folder inside an identity folder (expected root/<identity>/<image>)"
            raise DataError(entry, "", reason)
        if not is_image_name(entry.name):
            reason = f"not an image file (extension must be one of {sorted(IMAGE_SUFFIXES)})"
            raise DataError(entry, "", reason)
        names.append(entry.name)
    if not names:
        raise DataError(identity, "", "identity folder holds no images")
    return names
