"""MXNet/InsightFace RecordIO data sets (``train.rec`` + ``train.idx``) as a :class:`~fr_data.ingest.source.Source`.

Both layouts are read: the InsightFace one (header record 0, image records, then one identity record
per class) and a headerless file of image records. Every ``read`` validates the record (image magic
bytes, whole-number label in range) and raises :class:`fr_data.io.errors.DataError` naming the file and
the key and offset. :meth:`RecordIOSource.read_many` reads a whole batch in one pass in file order.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fr_data.formats.recordio import (
    IRHeader,
    RecordIOReader,
    find_sorted,
    rebuild_idx,
    scan_offsets,
    unpack_class_label,
    unpack_image_record,
)
from fr_data.ingest.source import SourceRecord, check_image_bytes, check_label
from fr_data.io.errors import DataError

log = logging.getLogger(__name__)

FLOAT32_EXACT_LIMIT = 1 << 24  # integers above this are not all representable in float32


def read_property(path: Path) -> int | None:
    """Number of classes from an InsightFace ``property`` file (``C,112,112``), if present."""
    if not path.is_file():
        return None
    first = path.read_text(encoding="ascii", errors="replace").strip().splitlines()[:1]
    try:
        return int(first[0].split(",")[0])
    except (IndexError, ValueError):
        raise DataError(path, "line 1", f"expected 'classes,height,width', got {first!r}") from None


@dataclass(frozen=True)
class RecordIOLayout:
    """Where the images are in a RecordIO file.

    Attributes:
        name: ``"insightface"`` (header record 0 + identity records) or ``"headerless"``.
        image_keys: sorted int64 keys of the image records.
        num_identity_records: identity records found (InsightFace layout), else 0.
        notes: disagreements found and how they were resolved.
    """

    name: str
    image_keys: np.ndarray
    num_identity_records: int = 0
    notes: tuple[str, ...] = field(default=())


def _is_meta_record(payload: bytes) -> bool:
    """InsightFace header/identity records: vector label of >= 2 values and no image bytes."""
    try:
        header, image = unpack_image_record(payload)
    except ValueError:
        return False
    return header.flag >= 2 and not image


def detect_layout(reader: RecordIOReader) -> RecordIOLayout:
    """Tell the InsightFace layout from a headerless file and locate the image keys.

    In the InsightFace layout the header's ``[first_identity_key, end)`` is cross-checked against
    the index. float32 header values are exact only up to 2^24, so when they disagree the index
    structure wins: the image/identity boundary is found by a binary search over the sorted keys
    (images carry bytes, identity records do not) and the disagreement is reported in ``notes``.
    When header and index agree, only the two records around the boundary are read.
    """
    keys = np.sort(reader.keys)
    if len(keys) == 0:
        raise DataError(reader.rec_path, "", "the index lists no records")
    if keys[0] != 0:
        return RecordIOLayout("headerless", keys)
    try:
        first = _read_key(reader, 0)
    except DataError as exc:
        note = f"record 0 is unreadable ({exc.reason}); treating the file as headerless"
        log.warning("%s: %s", reader.rec_path, note)
        return RecordIOLayout("headerless", keys, notes=(note,))
    if not _is_meta_record(first):
        return RecordIOLayout("headerless", keys)
    header, _ = unpack_image_record(first)
    body = keys[1:]
    notes: list[str] = []
    is_meta = functools.partial(_probe_meta, reader, notes)
    boundary = _header_boundary(header, body, is_meta)
    if boundary is None:
        boundary = _meta_boundary(body, is_meta)
    layout = RecordIOLayout("insightface", body[:boundary], len(body) - boundary)
    notes = _header_notes(header, layout, body) + notes
    for note in notes:
        log.warning("%s: %s", reader.rec_path, note)
    return RecordIOLayout(layout.name, layout.image_keys, layout.num_identity_records, tuple(notes))


def _read_key(reader: RecordIOReader, key: int) -> bytes:
    try:
        return reader.read(key)
    except DataError as exc:
        raise _keyed(exc, key) from None


def _keyed(exc: DataError, key: int) -> DataError:
    """``exc`` (a reader error located by offset) located by ``key`` too."""
    return DataError(exc.path, f"key {key}, {exc.where}", exc.reason)


def _probe_meta(reader: RecordIOReader, notes: list[str], key: int) -> bool:
    """Is ``key`` an identity record? An unreadable record is assumed to be an image (and noted)."""
    try:
        return _is_meta_record(reader.read(key))
    except DataError as exc:
        notes.append(f"record key {key} is unreadable ({exc.reason}); assumed to be an image")
        return False


def _header_boundary(header: IRHeader, body: np.ndarray, is_meta: Callable[[int], bool]) -> int | None:
    """Position in ``body`` where the header says identity records start, if the records agree."""
    first = float(np.asarray(header.label)[0])
    pos = int(np.searchsorted(body, first))
    if pos < len(body) and (body[pos] != first or not is_meta(int(body[pos]))):
        return None
    if pos > 0 and is_meta(int(body[pos - 1])):
        return None
    return pos


def _meta_boundary(body: np.ndarray, is_meta: Callable[[int], bool]) -> int:
    """First position in ``body`` (sorted keys after 0) holding an identity record (binary search)."""
    lo, hi = 0, len(body)
    while lo < hi:
        mid = (lo + hi) // 2
        if is_meta(int(body[mid])):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _header_notes(header: IRHeader, layout: RecordIOLayout, body: np.ndarray) -> list[str]:
    """Compare header record 0 with what the index holds."""
    first, end = (float(x) for x in np.asarray(header.label)[:2])
    n, c = len(layout.image_keys), layout.num_identity_records
    idx_first = int(body[n]) if c else (int(body[-1]) + 1 if n else 1)
    idx_end = int(body[-1]) + 1 if c else idx_first
    notes = []
    if (first, end) != (idx_first, idx_end):
        lossy = ""
        if max(first, end) > FLOAT32_EXACT_LIMIT:
            lossy = " (float32 header values are exact only up to 2^24)"
        notes.append(
            f"header record 0 says identity records are keys [{first:.0f}, {end:.0f}){lossy}, but the index "
            f"holds {n} image records and {c} identity records in keys [{idx_first}, {idx_end}); "
            "using the index"
        )
    if n and not np.array_equal(layout.image_keys, np.arange(1, n + 1)):
        notes.append(f"image keys are not contiguous 1..{n}: the index has gaps")
    return notes


class RecordIOSource:
    """Images of an MXNet/InsightFace RecordIO data set.

    Args:
        path: a folder holding ``train.rec`` (+ ``train.idx``, ``property``) or a ``.rec`` file.
        num_classes: class count to validate labels against; default: the InsightFace identity
            record count, else the ``property`` file, else ``max label + 1`` from a full scan.
        write_missing_idx: when the ``.idx`` is missing, rebuild it into the sibling file (if the
            folder is writable; otherwise it is kept in memory). Either way it is reported.
        repair_idx: when the ``.idx`` is inconsistent with the ``.rec`` (offsets past the end or
            off the 4-byte grid, duplicate keys, malformed lines), rebuild it in memory instead of
            raising.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        num_classes: int | None = None,
        write_missing_idx: bool = True,
        repair_idx: bool = False,
    ):
        self.path = Path(path)
        self.rec_path = self.path / "train.rec" if self.path.is_dir() else self.path
        if not self.rec_path.is_file():
            raise DataError(self.rec_path, "", "RecordIO file not found")
        self.idx_path = self.rec_path.with_suffix(".idx")
        self.notes: list[str] = []
        self.reader = self._open_reader(write_missing_idx, repair_idx)
        self.layout = detect_layout(self.reader)
        self.notes.extend(self.layout.notes)
        self._image_keys = self.layout.image_keys
        self._image_keys.flags.writeable = False
        self._num_classes = num_classes
        self.property_classes = read_property(self.rec_path.parent / "property")
        self._check_property()

    def _note(self, text: str) -> None:
        log.warning("%s: %s", self.rec_path, text)
        self.notes.append(text)

    def _open_reader(self, write_missing_idx: bool, repair_idx: bool) -> RecordIOReader:
        if not self.idx_path.exists():
            return self._rebuild_missing(write_missing_idx)
        try:
            return RecordIOReader(self.rec_path, self.idx_path)
        except DataError as exc:
            if not repair_idx:
                raise DataError(exc.path, exc.where, f"{exc.reason}; rebuild the index with "
                                "fr_data.formats.recordio.rebuild_idx or open with repair_idx=True") from None
            self._note(f"index {self.idx_path} is inconsistent ({exc}); rebuilt in memory from the .rec")
            return self._scanned_reader()

    def _rebuild_missing(self, write: bool) -> RecordIOReader:
        if write and os.access(self.idx_path.parent, os.W_OK):
            try:
                count = rebuild_idx(self.rec_path, self.idx_path)
            except OSError as exc:
                self._note(f"index {self.idx_path} missing and could not be written ({exc}); "
                           "rebuilt in memory")
                return self._scanned_reader()
            self._note(f"index {self.idx_path} was missing; rebuilt it from the .rec ({count} records)")
            return RecordIOReader(self.rec_path, self.idx_path)
        self._note(f"index {self.idx_path} is missing; rebuilt in memory from the .rec")
        return self._scanned_reader()

    def _scanned_reader(self) -> RecordIOReader:
        offsets = scan_offsets(self.rec_path, on_truncated=self._note_truncated)
        reader = RecordIOReader(self.rec_path, index=(np.arange(len(offsets), dtype=np.int64), offsets))
        reader.index_origin = "scan"
        return reader

    def _note_truncated(self, exc: DataError) -> None:
        self._note(f"the .rec ends inside a record ({exc}); indexed the complete records before it")

    def _check_property(self) -> None:
        declared = self.property_classes
        found = self.layout.num_identity_records
        if self.layout.name == "insightface" and declared is not None and declared != found:
            self._note(f"property file says {declared} classes but the .rec has "
                       f"{self.layout.num_identity_records} identity records; using the identity records")

    @property
    def num_classes(self) -> int:
        """Number of classes labels are validated against (see the constructor)."""
        if self._num_classes is None:
            self._num_classes = self._infer_num_classes()
        return self._num_classes

    def _infer_num_classes(self) -> int:
        if self.layout.name == "insightface":
            return self.layout.num_identity_records
        if self.property_classes is not None:
            return self.property_classes
        self._note("no property file: counting classes as max label + 1 over a full scan of the .rec")
        return _max_label(self.reader) + 1

    def __len__(self) -> int:
        return len(self._image_keys)

    def indices(self) -> np.ndarray:
        """Sorted int64 keys of the image records (read-only array)."""
        return self._image_keys

    def _is_image_key(self, key: int) -> bool:
        i = int(np.searchsorted(self._image_keys, key))
        return i < len(self._image_keys) and int(self._image_keys[i]) == key

    def read(self, index: int) -> SourceRecord:
        """The validated image record under key ``index``.

        Raises:
            DataError: unknown key, a non-image key, a broken record, a label that is not a whole
                number in ``[0, num_classes)`` or a payload that is not a JPEG/PNG.
        """
        key = int(index)
        if not self._is_image_key(key):
            raise self._not_an_image(key)
        where = f"key {key}, offset {int(self.reader.offsets[self.reader.position(key)])}"
        return self._record(key, where, _read_key(self.reader, key))

    def read_many(self, indices: Sequence[int] | np.ndarray) -> list[SourceRecord | DataError]:
        """:meth:`read` of every index in one call: per index the record or the :class:`DataError`.

        The records come from :meth:`RecordIOReader.read_many` (one pass in file order) and are
        validated like :meth:`read` does, with the same error texts; results are in input order.
        """
        keys = np.asarray(indices, dtype=np.int64).reshape(-1)
        image = find_sorted(self._image_keys, keys)[1]
        offsets = self.reader.offsets[self.reader.positions(keys)[0]].tolist()
        payloads = iter(self.reader.read_many(keys[image], views=True))
        return [self._checked(key, offset, next(payloads)) if ok else self._not_an_image(key)
                for key, offset, ok in zip(keys.tolist(), offsets, image.tolist())]

    def locate(self, index: int) -> tuple[Path, str]:
        """The ``.rec`` file and ``key N`` locator of record ``index``, for error messages."""
        return self.rec_path, f"key {index}"

    def _checked(
        self, key: int, offset: int, payload: bytes | memoryview | DataError
    ) -> SourceRecord | DataError:
        """:meth:`_record` of what the reader returned for image ``key``, or the error ``read`` raises."""
        if isinstance(payload, DataError):
            return _keyed(payload, key)
        try:
            return self._record(key, f"key {key}, offset {offset}", payload)
        except DataError as exc:
            return exc

    def _not_an_image(self, key: int) -> DataError:
        return DataError(self.rec_path, f"key {key}", f"not an image record of this {self.layout.name} file")

    def _record(self, key: int, where: str, payload: bytes | memoryview) -> SourceRecord:
        """Check image ``key``'s payload: whole label in range, JPEG/PNG bytes; errors name ``where``."""
        try:
            value, image = unpack_class_label(payload)
        except ValueError as exc:
            raise DataError(self.rec_path, where, str(exc)) from None
        label = check_label(value, self.num_classes, self.rec_path, where)
        check_image_bytes(image, self.rec_path, where)
        return SourceRecord(key, label, image)

    def describe(self) -> dict:
        """Kind, layout, paths, counts and notes (JSON-able)."""
        return {
            "kind": "recordio",
            "layout": self.layout.name,
            "rec": str(self.rec_path),
            "idx": str(self.idx_path) if self.reader.index_origin == "file" else None,
            "index_origin": self.reader.index_origin,
            "num_records": len(self.reader),
            "num_images": len(self),
            "num_classes": self.num_classes,
            "notes": list(self.notes),
        }


def _max_label(reader: RecordIOReader) -> int:
    """Largest whole, non-negative class label over all records (others are rejected on read)."""
    best = -1
    for _, payload in reader.scan():
        try:
            header, _ = unpack_image_record(payload)
        except ValueError:
            continue
        value = header.class_label
        if math.isfinite(value) and value == math.floor(value) and value >= 0:
            best = max(best, int(value))
    return best
