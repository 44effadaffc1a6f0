"""Writing ``.rec`` + ``.idx`` files byte-identical to MXNet's, in the InsightFace or headerless layout."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from fr_data.formats.recordio.parts import encode_record
from fr_data.formats.recordio.records import pack_image_record
from fr_data.io.atomic import atomic_path, atomic_write_text

#: The InsightFace RecordIO folder: images, their index, and ``classes,112,112``.
REC_FILE = "train.rec"
IDX_FILE = "train.idx"
PROPERTY_FILE = "property"


class RecordIOWriter:
    """Append records to a ``.rec`` and their offsets to a ``.idx``, MXNet-compatibly.

    Both files are written under temporary names and renamed onto ``rec_path`` / ``idx_path`` only
    by :meth:`close` (or a clean exit of the ``with`` block); an exception inside the block removes
    them and leaves any existing files untouched.
    """

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path)
        self._stack = contextlib.ExitStack()
        rec_tmp = self._stack.enter_context(atomic_path(self.rec_path))
        idx_tmp = self._stack.enter_context(atomic_path(self.idx_path))
        self._rec = self._stack.enter_context(open(rec_tmp, "wb"))
        self._idx = self._stack.enter_context(open(idx_tmp, "w", encoding="ascii", newline="\n"))
        self._offset = 0
        self.count = 0

    def write(self, key: int, payload: bytes) -> int:
        """Append one logical record under ``key``; return the byte offset it was written at."""
        key = int(key)
        data = encode_record(payload)
        offset = self._offset
        self._rec.write(data)
        self._idx.write(f"{key}\t{offset}\n")
        self._offset += len(data)
        self.count += 1
        return offset

    def _patch(self, offset: int, payload: bytes) -> None:
        """Overwrite the record at ``offset`` with one of exactly the same encoded size."""
        data = encode_record(payload)
        self._rec.seek(offset)
        self._rec.write(data)
        self._rec.seek(self._offset)

    def close(self) -> None:
        """Flush and move both files to their final names."""
        self._stack.close()

    def abort(self) -> None:
        """Discard everything written; the final names are not touched."""
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> RecordIOWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stack.__exit__(exc_type, exc, tb)


def write_insightface(
    folder: str | os.PathLike,
    items: Iterable[tuple[int, bytes]],
    *,
    vector_label: bool = False,
    shuffled: bool = False,
) -> dict:
    """Write ``train.rec``, ``train.idx`` and ``property`` into ``folder``.

    Args:
        folder: output folder (created if needed).
        items: ``(label, image_bytes)`` pairs. For the InsightFace layout they must be grouped by
            label in ascending order; image ``i`` gets key ``i + 1``.
        vector_label: store labels as ``[class, 1.0]`` (flag 2, like ``face2rec2.py``) instead of a
            scalar.
        shuffled: write the headerless layout instead (no header or identity records, image ``i``
            gets key ``i``, any label order), like InsightFace's ``shuffle_rec.py`` output; shuffle
            the items yourself beforehand.

    Returns:
        ``{"num_images": N, "num_classes": C}`` with ``C = max label + 1`` (in the InsightFace layout
        a class without images gets an empty ``[start, start)`` range).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with RecordIOWriter(folder / REC_FILE, folder / IDX_FILE) as writer:
        if shuffled:
            counts = _write_images(writer, items, vector_label, first_key=0)
        else:
            counts = _write_insightface_records(writer, items, vector_label)
    atomic_write_text(folder / PROPERTY_FILE, f"{counts['num_classes']},112,112\n")
    return counts


def _image_label(label: int, vector_label: bool) -> float | list[float]:
    return [float(label), 1.0] if vector_label else float(label)


def _write_images(
    writer: RecordIOWriter, items: Iterable[tuple[int, bytes]], vector_label: bool, first_key: int
) -> dict:
    """Write image records with consecutive keys from ``first_key``; return counts."""
    num_images, max_label = 0, -1
    for label, image in items:
        label = _check_label(label)
        writer.write(first_key + num_images, pack_image_record(_image_label(label, vector_label), image))
        num_images += 1
        max_label = max(max_label, label)
    return {"num_images": num_images, "num_classes": max_label + 1}


def _write_insightface_records(
    writer: RecordIOWriter, items: Iterable[tuple[int, bytes]], vector_label: bool
) -> dict:
    """Header record, images grouped by label, then one ``[start, end)`` record per class."""
    writer.write(0, _meta_record(0, 0))  # placeholder, patched once N and C are known
    starts: list[int] = []  # starts[c] = first image key of class c
    key = 1
    for label, image in items:
        label = _check_label(label)
        if label < len(starts) - 1:
            raise ValueError(f"item {key - 1}: label {label} after label {len(starts) - 1}; "
                             "items must be grouped by label in ascending order")
        while len(starts) <= label:
            starts.append(key)
        writer.write(key, pack_image_record(_image_label(label, vector_label), image))
        key += 1
    num_images, num_classes = key - 1, len(starts)
    ends = starts[1:] + [key]
    for cls in range(num_classes):
        writer.write(key + cls, _meta_record(starts[cls], ends[cls]))
    writer._patch(0, _meta_record(key, key + num_classes))
    return {"num_images": num_images, "num_classes": num_classes}


def _meta_record(start: int, end: int) -> bytes:
    """An InsightFace header/identity record: flag 2, label ``[start, end]``, no image."""
    if max(start, end) > 1 << 24:
        raise ValueError(f"key {max(start, end)} exceeds 2^24 and cannot be stored exactly in float32")
    return pack_image_record([start, end], b"")


def _check_label(label: int) -> int:
    if int(label) != label or label < 0:
        raise ValueError(f"labels must be non-negative integers, got {label!r}")
    return int(label)
