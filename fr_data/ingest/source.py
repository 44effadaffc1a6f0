"""Face data sets on disk, seen as indexable sources of ``(label, encoded image bytes)`` records.

Two kinds exist: :class:`~fr_data.ingest.recordio_source.RecordIOSource` (MXNet/InsightFace
``train.rec`` + ``train.idx``) and :class:`~fr_data.ingest.image_folder.ImageFolderSource`
(``root/<identity>/<image>``); :func:`open_source` picks one from a path. A source validates every
record it returns (image magic bytes, whole-number label in range) and raises
:class:`fr_data.io.errors.DataError` naming the file and the key, offset or path, so a caller can stop
or record the rejection and go on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from fr_data.formats.images import image_format
from fr_data.io.errors import DataError


@dataclass(frozen=True)
class SourceRecord:
    """One image of a source.

    Attributes:
        source_index: the record's index in its source (RecordIO key or image-folder position).
        label: the class, an integer in ``[0, num_classes)``.
        data: the encoded image file bytes exactly as stored (never re-encoded).
    """

    source_index: int
    label: int
    data: bytes


@dataclass(frozen=True)
class Skipped:
    """Something a source left out while opening, before any record was read: a damaged span or bad
    index line of a RecordIO file, a non-image file in an image folder. The sharder lists each one in
    ``rejected.parquet`` (without a shard).

    Attributes:
        path: the file or folder at fault.
        index: the source index (RecordIO key) when one is known.
        where: a locator (``key K, line N``, ``offset X``, a path); may be empty.
        reason: what is wrong, in words.
    """

    path: str | os.PathLike
    index: int | None
    where: str
    reason: str


def skipped_of(source: object) -> list[Skipped]:
    """What ``source`` left out while opening (its ``skipped`` list; sources may have none)."""
    return list(getattr(source, "skipped", ()))


@runtime_checkable
class Source(Protocol):
    """A data set that yields validated :class:`SourceRecord` objects by index."""

    path: Path
    num_classes: int

    def __len__(self) -> int: ...

    def indices(self) -> np.ndarray:
        """int64 source indices of all images, ascending."""
        ...

    def read(self, index: int) -> SourceRecord:
        """The validated record at ``index``; :class:`DataError` if it is bad."""
        ...

    def read_many(self, indices: Sequence[int]) -> list[SourceRecord | DataError]:
        """:meth:`read` of each index, in input order: the record or the error ``read`` raises."""
        ...

    def locate(self, index: int) -> tuple[Path, str]:
        """The file holding record ``index`` and its locator there (``key N``, ``index N``)."""
        ...

    def describe(self) -> dict:
        """A JSON-able summary: kind, paths, counts and any notes about repairs."""
        ...

    def origin(self, index: int, label: int) -> Origin:
        """Where record ``index`` (of class ``label``) came from, as the shard manifest records it."""
        ...


@dataclass(frozen=True)
class Origin:
    """Where one image came from, written to the shard manifest (``source_path``, ``identity``).

    Attributes:
        path: the image file relative to an image folder's root (``0000045/001.jpg``), or the ``.rec``
            file name and record key (``train.rec#1234``).
        identity: the identity folder name, or the RecordIO label as a string.
    """

    path: str
    identity: str


def origin_of(source: object, index: int, label: int) -> Origin | None:
    """``source.origin(index, label)``, or None for a source that cannot say (its manifest rows then hold
    nulls)."""
    origin = getattr(source, "origin", None)
    return None if origin is None else origin(index, label)


def read_each(source: Source, indices: Sequence[int]) -> list[SourceRecord | DataError]:
    """``source.read`` of each index, one by one in ascending index order; results in input order."""
    results: list[SourceRecord | DataError | None] = [None] * len(indices)
    for pos in sorted(range(len(indices)), key=indices.__getitem__):
        try:
            results[pos] = source.read(indices[pos])
        except DataError as exc:
            results[pos] = exc
    return results  # type: ignore[return-value]


def check_image_bytes(data: bytes, path: str | os.PathLike, where: str) -> None:
    """Raise :class:`DataError` unless ``data`` starts like a JPEG (SOI) or PNG (signature)."""
    if image_format(data) is None:
        what = "is empty" if not data else f"starts with {bytes(data[:8]).hex(' ')}"
        raise DataError(path, where, f"payload is not a JPEG or PNG image ({len(data)} bytes, {what})")


def check_label(value: float, num_classes: int, path: str | os.PathLike, where: str) -> int:
    """Return ``value`` as an int if it is a whole number in ``[0, num_classes)``, else raise."""
    if not math.isfinite(value) or value != math.floor(value):
        raise DataError(path, where, f"label {value!r} is not a whole number")
    if not 0 <= value < num_classes:
        raise DataError(path, where, f"label {int(value)} is out of range [0, {num_classes})")
    return int(value)
