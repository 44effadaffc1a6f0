"""Image folders ``root/<identity>/<image>`` (WebFace, CASIA, VGGFace2 copies) as a
:class:`~fr_data.ingest.source.Source`."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fr_data.formats.images import IMAGE_SUFFIXES, is_image_name
from fr_data.ingest.source import Origin, Skipped, SourceRecord, check_image_bytes, read_each
from fr_data.io.errors import DataError
from fr_data.io.policy import ErrorPolicy

log = logging.getLogger(__name__)

#: The ``rejected.parquet`` reason of a file that is no image (its details follow in parentheses).
NOT_AN_IMAGE = "not an image"


class ImageFolderSource:
    """``root/<identity>/<image>`` folders; identities labelled 0.. in sorted name order.

    Names starting with a dot are ignored. Anything else that does not fit the layout (a file directly
    under ``root``, a sub-folder inside an identity, a file without an image extension such as
    ``notes.txt`` or ``Thumbs.db``, an identity folder with no images) raises :class:`DataError` naming
    the path and ``--skip-corrupt``; under ``ErrorPolicy.SKIP`` it is left out instead and listed in
    :attr:`skipped` (an empty identity folder then gets no label). Extensions are matched in any case
    (:func:`fr_data.formats.images.is_image_name`); symlinks are followed. ``source_index`` is the
    position in the sorted list of all images (identity, then file name).

    Attributes:
        skipped: what was left out while listing the folder, one :class:`Skipped` each.
    """

    def __init__(self, root: str | os.PathLike, *, errors: ErrorPolicy = ErrorPolicy.STRICT):
        self.path = Path(root)
        if not self.path.is_dir():
            raise DataError(self.path, "", "image folder not found")
        self.errors = errors
        self.skipped: list[Skipped] = []
        self.notes: list[str] = []
        self.classes: list[str] = []
        files: list[str] = []
        counts: list[int] = []
        for identity in _visible_entries(self.path):
            if not identity.is_dir():
                self._leave_out(identity, "not an identity folder (a file directly under the root)")
                continue
            images = self._identity_images(identity)
            if not images:
                self._leave_out(identity, "identity folder holds no images")
                continue
            self.classes.append(identity.name)
            files.extend(f"{identity.name}/{name}" for name in images)
            counts.append(len(images))
        if not self.classes:
            raise DataError(self.path, "", "no identity folders with images found")
        self._files = files
        self._labels = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        self.num_classes = len(self.classes)
        self._note_skipped()

    def _leave_out(self, path: Path, reason: str) -> None:
        """Raise (strict) or list ``path`` as left out (skip)."""
        self.errors.reject(DataError(path, "", f"{reason}; rerun with --skip-corrupt to skip such entries and "
                                     "list them in rejected.parquet"))
        self.skipped.append(Skipped(path, None, "", reason))

    def _identity_images(self, identity: Path) -> list[str]:
        names = []
        for entry in _visible_entries(identity):
            if entry.is_dir():
                self._leave_out(entry, "nested folder inside an identity folder (expected root/<identity>/<image>)")
            elif not is_image_name(entry.name):
                self._leave_out(entry, f"{NOT_AN_IMAGE} (extension {entry.suffix or 'none'!r}; image files end "
                                f"in {', '.join(sorted(IMAGE_SUFFIXES))}, any case)")
            else:
                names.append(entry.name)
        return names

    def _note_skipped(self) -> None:
        if not self.skipped:
            return
        kinds = Counter(s.reason.split(" (")[0] for s in self.skipped)
        text = ", ".join(f"{n} x {reason}" for reason, n in sorted(kinds.items()))
        self.notes.append(f"left out while listing the folder: {text}")
        log.warning("%s: %s", self.path, self.notes[-1])

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

    def origin(self, index: int, label: int) -> Origin:
        """The image's path relative to the root (``identity/file``) and its identity folder's name."""
        return Origin(self._files[index], self.classes[label])

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
                "num_classes": self.num_classes, "notes": list(self.notes)}


def _visible_entries(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise DataError(folder, "", f"cannot list folder: {exc.strerror or exc}") from None
