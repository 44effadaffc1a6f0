"""MXNet / InsightFace RecordIO (``.rec`` + ``.idx``) read and written without MXNet.

Container (dmlc-core ``recordio.h``): every physical part is ``magic`` (uint32 ``0xced7230a``,
little-endian), a length word ``lrec`` whose top 3 bits are the continuation flag ``cflag`` and whose
low 29 bits are the part length, the payload, then zero padding to a 4-byte boundary. dmlc's writer
splits a payload at every 4-byte-aligned occurrence of the magic word: the magic itself is dropped,
the pieces are written with ``cflag`` 1 (first), 2 (middle) and 3 (last), and the reader puts the
magic back between the pieces. An unsplit record has ``cflag`` 0.

Index (MXNet ``MXIndexedRecordIO``): one ``key<TAB>offset`` line per logical record, ``offset`` being
the byte position of the record's first magic word. :func:`load_idx` parses it into two int64 numpy
arrays (no per-worker Python dict); :class:`RecordIOReader` looks keys up with direct indexing when
the keys are contiguous and with ``searchsorted`` otherwise.

Image payloads (MXNet ``recordio.pack``): a 24-byte ``IRHeader`` (``<IfQQ``: flag, label, id, id2);
``flag > 0`` means ``flag`` float32 labels follow the header, before the image bytes.

InsightFace layout (``write_insightface``): key 0 is a header record (flag 2, label ``[N+1, N+1+C]``,
no image); keys ``1..N`` are images grouped by class; keys ``N+1..N+C`` hold one ``[start, end)``
image-key range per class. The headerless layout (e.g. files re-shuffled for DALI) has only images.

Modules: ``records`` (image payloads), ``parts`` (container parts), ``index`` (the ``.idx``), ``reader``,
``writer``; the names below are the public API.
"""

from fr_data.formats.recordio.index import load_idx, rebuild_idx, scan_offsets, write_idx
from fr_data.formats.recordio.parts import (CFLAG_FIRST, CFLAG_LAST, CFLAG_MIDDLE, CFLAG_WHOLE, MAGIC, MAGIC_BYTES,
                                            MAX_RECORD_BYTES, encode_record, split_payload)
from fr_data.formats.recordio.reader import RecordIOReader, find_sorted
from fr_data.formats.recordio.records import (IR_FORMAT, IR_SIZE, IRHeader, pack_image_record, unpack_class_label,
                                              unpack_image_record)
from fr_data.formats.recordio.writer import RecordIOWriter, write_insightface

__all__ = ["CFLAG_FIRST", "CFLAG_LAST", "CFLAG_MIDDLE", "CFLAG_WHOLE", "IRHeader", "IR_FORMAT", "IR_SIZE", "MAGIC",
           "MAGIC_BYTES", "MAX_RECORD_BYTES", "RecordIOReader", "RecordIOWriter", "encode_record", "find_sorted",
           "load_idx", "pack_image_record", "rebuild_idx", "scan_offsets", "split_payload", "unpack_class_label",
           "unpack_image_record", "write_idx", "write_insightface"]
