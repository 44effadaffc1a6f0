"""MXNet/InsightFace RecordIO data sets (``train.rec`` + ``train.idx``) as a :class:`~fr_data.ingest.source.Source`.

Both layouts are read: the InsightFace one (header record 0, image records, then one identity record
per class) and a headerless file of image records. Every ``read`` validates the record (image magic
bytes, whole-number label in range) and raises :class:`fr_data.io.errors.DataError` naming the file and
the key and offset. :meth:`RecordIOSource.read_many` reads a whole batch in one pass in file order.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fr_data.formats.recordio import (
    RecordIOReader,
    find_sorted,
    unpack_class_label,
    write_idx,
)
from fr_data.formats.recordio.index import record_end
from fr_data.formats.recordio.repair import RepairedIndex, repair_index
from fr_data.formats.recordio.writer import PROPERTY_FILE, REC_FILE
from fr_data.ingest.recordio_layout import detect_layout, header_record_count, keyed, read_key, read_property
from fr_data.ingest.source import Origin, Skipped, SourceRecord, check_image_bytes, check_label
from fr_data.io.errors import DataError
from fr_data.io.policy import ErrorPolicy

log = logging.getLogger(__name__)

REPAIR_HINT = ("rerun with --repair-idx to rebuild the index from the .rec, or --skip-corrupt to also "
               "skip and list damaged records (RecordIOSource(repair_idx=True))")


class RecordIOSource:
    """Images of an MXNet/InsightFace RecordIO data set.

    Args:
        path: a folder holding ``train.rec`` (+ ``train.idx``, ``property``) or a ``.rec`` file.
        num_classes: class count to validate labels against; default: the InsightFace identity
            record count, else the ``property`` file, else ``max label + 1`` from a full scan.
        write_missing_idx: when the ``.idx`` is missing, rebuild it into the sibling file (if the
            folder is writable and the ``.rec`` undamaged; otherwise it is kept in memory). Either way
            it is reported.
        repair_idx: check the ``.idx`` against a scan of the ``.rec`` and repair it in memory
            (:func:`~fr_data.formats.recordio.repair.repair_index`: the ``.rec`` is the truth) instead
            of raising when it is inconsistent (offsets past the end or off the 4-byte grid, duplicate
            keys, malformed lines).
        errors: the sharder's error policy (``--skip-corrupt``: ``ErrorPolicy.SKIP``): when skipping, repair like ``repair_idx`` when the index is
            inconsistent or looks incomplete (gaps in its keys, a last record cut short), and let a
            missing index be rebuilt from a damaged ``.rec``.

    Attributes:
        skipped: what was left out while opening (damaged spans, bad index lines, a truncated last
            identity record), one :class:`~fr_data.ingest.source.Skipped` each.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        num_classes: int | None = None,
        write_missing_idx: bool = True,
        repair_idx: bool = False,
        errors: ErrorPolicy = ErrorPolicy.STRICT,
    ):
        self.path = Path(path)
        self.rec_path = self.path / REC_FILE if self.path.is_dir() else self.path
        if not self.rec_path.is_file():
            raise DataError(self.rec_path, "", "RecordIO file not found")
        self.idx_path = self.rec_path.with_suffix(".idx")
        self.notes: list[str] = []
        self.skipped: list[Skipped] = []
        self.errors = errors
        self.reader = self._open_reader(write_missing_idx, repair_idx)
        self.layout = detect_layout(self.reader)
        self.notes.extend(self.layout.notes)
        self._image_keys = self.layout.image_keys
        self._image_keys.flags.writeable = False
        self._num_classes = num_classes
        self.property_classes = read_property(self.rec_path.parent / PROPERTY_FILE)
        self._check_property()
        self._check_last_record()

    def _note(self, text: str) -> None:
        log.warning("%s: %s", self.rec_path, text)
        self.notes.append(text)

    def _open_reader(self, write_missing_idx: bool, repair_idx: bool) -> RecordIOReader:
        if not self.idx_path.exists():
            return self._rebuild_missing(write_missing_idx)
        try:
            reader = RecordIOReader(self.rec_path, self.idx_path)
        except DataError as exc:
            if not (repair_idx or self.errors.skip):
                raise DataError(exc.path, exc.where, f"{exc.reason}; {REPAIR_HINT}") from None
            self._note(f"index {self.idx_path} is inconsistent ({exc}); repaired in memory from a scan of the .rec")
            return self._repaired_reader(self.idx_path)
        if repair_idx or (self.errors.skip and _looks_incomplete(reader)):
            reader.close()
            self._note(f"index {self.idx_path} checked against a scan of the .rec")
            return self._repaired_reader(self.idx_path)
        return reader

    def _rebuild_missing(self, write: bool) -> RecordIOReader:
        repaired = repair_index(self.rec_path, None, record_count=header_record_count(self.rec_path))
        if repaired.dropped and not self.errors.skip:
            first = repaired.dropped[0]
            raise DataError(first.path, first.where, f"{first.reason} (and no .idx to go by); "
                            "rerun with --skip-corrupt to index the complete records")
        if not repaired.dropped and write and os.access(self.idx_path.parent, os.W_OK):
            try:
                write_idx(self.idx_path, repaired.keys, repaired.offsets)
            except OSError as exc:
                self._note(f"index {self.idx_path} missing and could not be written ({exc}); rebuilt in memory")
            else:
                self._note(f"index {self.idx_path} was missing; rebuilt it from the .rec "
                           f"({len(repaired.keys)} records)")
                return RecordIOReader(self.rec_path, self.idx_path)
        else:
            self._note(f"index {self.idx_path} is missing; rebuilt in memory from the .rec")
        return self._reader_of(repaired)

    def _repaired_reader(self, idx_path: Path) -> RecordIOReader:
        return self._reader_of(repair_index(self.rec_path, idx_path))

    def _reader_of(self, repaired: RepairedIndex) -> RecordIOReader:
        """A reader over a repaired index; what it left out becomes notes and :attr:`skipped` rows."""
        for text in repaired.notes:
            self._note(text)
        self.skipped.extend(Skipped(d.path, d.key, d.where, d.reason) for d in repaired.dropped)
        reader = RecordIOReader(self.rec_path, index=(repaired.keys, repaired.offsets))
        reader.index_origin = "scan"
        return reader

    def _check_last_record(self) -> None:
        """A last record cut short that is no image (an identity record) is noted and listed."""
        if len(self.reader) == 0:
            return
        row = int(np.argmax(self.reader.offsets))
        key, offset = int(self.reader.keys[row]), int(self.reader.offsets[row])
        with open(self.rec_path, "rb") as f:
            try:
                record_end(f, self.rec_path, offset, self.reader.size)
                return
            except DataError as exc:
                error = exc
        if self._is_image_key(key):
            return  # reading it fails like any other broken image record
        where = f"key {key}, offset {offset}"
        self._note(f"the last record ({where}) is no image and is cut short: {error.reason}")
        self.skipped.append(Skipped(self.rec_path, key, where, f"identity record cut short: {error.reason}"))

    def _check_property(self) -> None:
        declared = self.property_classes
        found = max(self.layout.num_identity_records, self.layout.declared_classes or 0)
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
            found, declared = self.layout.num_identity_records, self.layout.declared_classes
            if declared is not None and declared > found:
                self._note(f"header record 0 declares {declared} classes but only {found} identity records "
                           f"are readable; validating labels against {declared}")
                return declared
            return found
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
        return self._record(key, where, read_key(self.reader, key))

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

    def origin(self, index: int, label: int) -> Origin:
        """``train.rec#KEY`` (the ``.rec`` file's name and the record key) and the label as text: a
        RecordIO file names no identities."""
        return Origin(f"{self.rec_path.name}#{int(index)}", str(int(label)))

    def _checked(
        self, key: int, offset: int, payload: bytes | memoryview | DataError
    ) -> SourceRecord | DataError:
        """:meth:`_record` of what the reader returned for image ``key``, or the error ``read`` raises."""
        if isinstance(payload, DataError):
            return keyed(payload, key)
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


def _max_label(reader: RecordIOReader, batch: int = 4096) -> int:
    """Largest whole, non-negative class label over the indexed records (others are rejected on read;
    unreadable records are skipped here and reported when sharding reads them)."""
    best = -1
    for start in range(0, len(reader), batch):
        for payload in reader.read_many(reader.keys[start:start + batch], views=True):
            try:
                value = unpack_class_label(payload)[0] if not isinstance(payload, Exception) else math.nan
            except ValueError:
                continue
            if math.isfinite(value) and value == math.floor(value) and value >= 0:
                best = max(best, int(value))
    return best


def _looks_incomplete(reader: RecordIOReader) -> bool:
    """Cheap signs that an index misses records: gaps in its keys, or a last record cut short."""
    if len(reader) == 0:
        return False
    keys = reader.keys
    if int(keys.max()) - int(keys.min()) + 1 != len(keys):
        return True
    row = int(np.argmax(reader.offsets))
    with open(reader.rec_path, "rb") as f:
        try:
            record_end(f, reader.rec_path, int(reader.offsets[row]), reader.size)
        except DataError:
            return True
    return False
