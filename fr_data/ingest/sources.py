"""Opening a face data set by path: which :class:`~fr_data.ingest.source.Source` kind reads it.

Kinds are tried in order; the first whose test accepts the path opens it. A new kind (another
container format) is one module with a Source class plus one row here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fr_data.ingest.image_folder import ImageFolderSource
from fr_data.ingest.recordio_source import RecordIOSource
from fr_data.ingest.source import Source
from fr_data.io.errors import DataError


def is_recordio(path: Path) -> bool:
    """A ``.rec`` file, or a folder holding ``train.rec``."""
    return (path.is_file() and path.suffix == ".rec") or (path / "train.rec").is_file()


def _image_folder(path: Path, **_recordio_options) -> Source:
    return ImageFolderSource(path)


#: ``(name, accepts(path), open(path, **options))`` per source kind, tried in order.
SOURCE_KINDS: list[tuple[str, Callable[[Path], bool], Callable[..., Source]]] = [
    ("recordio", is_recordio, RecordIOSource),
    ("image_folder", Path.is_dir, _image_folder),
]


def open_source(path: str | os.PathLike, **kwargs) -> Source:
    """Open ``path`` as a RecordIO folder or ``.rec`` file, else as an image folder.

    Keyword arguments go to :class:`~fr_data.ingest.recordio_source.RecordIOSource` (RecordIO only).
    """
    path = Path(path)
    for _, accepts, opener in SOURCE_KINDS:
        if accepts(path):
            return opener(path, **kwargs)
    raise DataError(path, "", "not a RecordIO folder, a .rec file or an image folder")
