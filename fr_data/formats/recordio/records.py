"""Image record payloads (MXNet ``recordio.pack``): the 24-byte IRHeader, labels, image bytes."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24

_IR = struct.Struct(IR_FORMAT)
_F32 = struct.Struct("<f")




@dataclass(frozen=True)
class IRHeader:
    """Header of an MXNet image record.

    Attributes:
        flag: 0 for a scalar label, else the number of float32 labels stored before the image.
        label: the scalar label (flag 0) or a float32 vector of ``flag`` labels.
        id: first 64-bit id field (free use; InsightFace leaves it 0).
        id2: second 64-bit id field.
    """

    flag: int
    label: float | np.ndarray
    id: int
    id2: int

    @property
    def class_label(self) -> float:
        """The class as a float: the scalar label, or the first element of a vector label."""
        if self.flag > 0:
            return float(np.asarray(self.label)[0])
        return float(self.label)


def pack_image_record(
    label: float | int | Sequence[float] | np.ndarray, image: bytes, id: int = 0, id2: int = 0
) -> bytes:
    """Build an image-record payload the way ``mxnet.recordio.pack`` does.

    Args:
        label: a number (stored in the header, ``flag`` 0) or a non-empty sequence of numbers
            (``flag = len``, stored as float32 right after the header).
        image: encoded image bytes, stored verbatim.
        id: first id field.
        id2: second id field.

    Returns:
        The payload bytes (header, optional labels, image).
    """
    if np.ndim(label) == 0:
        return _IR.pack(0, float(label), id, id2) + bytes(image)
    vector = np.asarray(label, dtype="<f4").ravel()
    if vector.size == 0:
        raise ValueError("a vector label needs at least one value")
    return _IR.pack(vector.size, 0.0, id, id2) + vector.tobytes() + bytes(image)


def _image_record_fields(payload: bytes | memoryview) -> tuple[int, float, int, int, int]:
    """``(flag, scalar label, id, id2, image start)`` of an image-record payload.

    Raises:
        ValueError: the payload is shorter than its header and labels say it must be.
    """
    if len(payload) < IR_SIZE:
        raise ValueError(f"image record of {len(payload)} bytes is shorter than the {IR_SIZE}-byte header")
    flag, label, id_, id2 = _IR.unpack_from(payload, 0)
    end = IR_SIZE + 4 * flag
    if end > len(payload):
        raise ValueError(f"header announces {flag} float32 labels but the record has {len(payload)} bytes")
    return flag, label, id_, id2, end


def unpack_image_record(payload: bytes | memoryview) -> tuple[IRHeader, bytes]:
    """Split an image-record payload into its header and the image bytes.

    Raises:
        ValueError: the payload is shorter than its header and labels say it must be.
    """
    flag, label, id_, id2, end = _image_record_fields(payload)
    if flag == 0:
        return IRHeader(0, label, id_, id2), bytes(payload[IR_SIZE:])
    vector = np.frombuffer(payload, dtype="<f4", count=flag, offset=IR_SIZE).copy()
    return IRHeader(flag, vector, id_, id2), bytes(payload[end:])


def unpack_class_label(payload: bytes | memoryview) -> tuple[float, bytes]:
    """``(header.class_label, image)`` of :func:`unpack_image_record`, without building the header.

    Raises:
        ValueError: as :func:`unpack_image_record`.
    """
    flag, label, _, _, end = _image_record_fields(payload)
    if flag:
        label = _F32.unpack_from(payload, IR_SIZE)[0]
    return label, bytes(payload[end:])
