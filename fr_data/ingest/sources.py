"""Opening a face data set by path: which :class:`~fr_data.ingest.source.Source` kind reads it.

Kinds are tried in order; the first whose test accepts the path opens it. A new kind (another
container format) is one module with a Source class plus one row here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fr_data.formats.recordio.writer import REC_FILE
from fr_data.ingest.image_folder import ImageFolderSource
from fr_data.ingest.recordio_source import RecordIOSource
from fr_data.ingest.source import Source
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.policy import ErrorPolicy


def is_recordio(path: Path) -> bool:
    """A ``.rec`` file, or a folder holding ``train.rec``."""
    return (path.is_file() and path.suffix == ".rec") or (path / REC_FILE).is_file()


def _recordio(path: Path, errors: ErrorPolicy, **options) -> Source:
    return RecordIOSource(path, errors=errors, **options)


def _image_folder(path: Path, errors: ErrorPolicy, **options) -> Source:
    if options.get("repair_idx"):
        raise ConfigError(f"{path}: --repair-idx applies to RecordIO sources; this is an image folder")
    unknown = set(options) - {"repair_idx"}
    if unknown:
        raise ConfigError(f"{path}: options {sorted(unknown)} apply to RecordIO sources only")
    return ImageFolderSource(path, errors=errors)


#: ``(name, accepts(path), open(path, errors, **options))`` per source kind, tried in order.
SOURCE_KINDS: list[tuple[str, Callable[[Path], bool], Callable[..., Source]]] = [
    ("recordio", is_recordio, _recordio),
    ("image_folder", Path.is_dir, _image_folder),
]


def open_source(path: str | os.PathLike, *, errors: ErrorPolicy = ErrorPolicy.STRICT, **options) -> Source:
    """Open ``path`` as a RecordIO folder or ``.rec`` file, else as an image folder.

    Args:
        path: the data set.
        errors: the command's error policy (``--skip-corrupt``: ``ErrorPolicy.SKIP``): a source leaves out
            what it cannot use while opening (listed in its ``skipped``) instead of raising.
        options: for :class:`~fr_data.ingest.recordio_source.RecordIOSource` (``repair_idx``,
            ``num_classes``, ``write_missing_idx``); an image folder accepts only ``repair_idx=False``.
    """
    path = Path(path)
    for _, accepts, opener in SOURCE_KINDS:
        if accepts(path):
            return opener(path, errors, **options)
    raise DataError(path, "", "not a RecordIO folder, a .rec file or an image folder")
