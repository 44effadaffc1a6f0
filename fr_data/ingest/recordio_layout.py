"""Where the images are in a RecordIO file: the InsightFace layout (header record 0, images, identity
records) told apart from a headerless file, cross-checked against the index and the ``property`` file."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fr_data.formats.recordio import IRHeader, RecordIOReader, unpack_image_record
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
        declared_classes: the class count header record 0 declares (InsightFace layout), if plausible.
    """

    name: str
    image_keys: np.ndarray
    num_identity_records: int = 0
    notes: tuple[str, ...] = field(default=())
    declared_classes: int | None = None


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
        first = read_key(reader, 0)
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
    # The header's class count counts when the identity records the index holds lie inside its key
    # range (some may be damaged or cut off); a range beside them is a wrong header.
    first, end = (float(x) for x in np.asarray(header.label)[:2])
    ids = body[boundary:]
    trusted = len(ids) == 0 or (first <= ids[0] and ids[-1] < end)
    declared = _declared_classes(header) if trusted else None
    notes = _header_notes(header, layout, body) + notes
    for note in notes:
        log.warning("%s: %s", reader.rec_path, note)
    return RecordIOLayout(layout.name, layout.image_keys, layout.num_identity_records, tuple(notes), declared)


def header_record_count(rec_path: Path) -> int | None:
    """How many records an InsightFace header record 0 says the file holds (the end of its identity
    key range), or None when record 0 is no readable header."""
    try:
        with RecordIOReader(rec_path, index=(np.zeros(1, np.int64), np.zeros(1, np.int64))) as reader:
            payload = reader.read(0)
    except DataError:
        return None
    if not _is_meta_record(payload):
        return None
    end = float(np.asarray(unpack_image_record(payload)[0].label)[1])
    return int(end) if _whole_key(end) else None


def _whole_key(value: float) -> bool:
    return math.isfinite(value) and value == math.floor(value) and 0 < value <= FLOAT32_EXACT_LIMIT


def _declared_classes(header: IRHeader) -> int | None:
    """``end - first`` of header record 0's identity key range, when both are whole numbers in range."""
    first, end = (float(x) for x in np.asarray(header.label)[:2])
    return int(end - first) if _whole_key(first) and _whole_key(end) and end > first else None


def read_key(reader: RecordIOReader, key: int) -> bytes:
    try:
        return reader.read(key)
    except DataError as exc:
        raise keyed(exc, key) from None


def keyed(exc: DataError, key: int) -> DataError:
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
