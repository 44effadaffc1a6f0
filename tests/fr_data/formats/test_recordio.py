"""fr_data.formats.recordio: container parts, split records, .idx, IRHeader, writer, reader, InsightFace layout."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from fr_data.formats import recordio as rio
from fr_data.io.errors import DataError
from tests.fr_data.formats._recordio_fixtures import (
    MXNET_IMG_IDX,
    MXNET_IMG_REC,
    MXNET_KEYS,
    MXNET_PAYLOADS,
    MXNET_SMALL_IDX,
    MXNET_SMALL_REC,
)
from tests.repo import ROOT

M = struct.pack("<I", 0xCED7230A)


def _part(cflag: int, payload: bytes) -> bytes:
    """One physical part assembled by hand from the documented layout (not via the module)."""
    head = struct.pack("<II", 0xCED7230A, (cflag << 29) | len(payload))
    return head + payload + b"\0" * (-len(payload) % 4)


def _write(tmp_path, rec: bytes, idx: str, name: str = "t"):
    (tmp_path / f"{name}.rec").write_bytes(rec)
    (tmp_path / f"{name}.idx").write_text(idx)
    return tmp_path / f"{name}.rec", tmp_path / f"{name}.idx"


# -- layout constants and the hand-built fixture ---------------------------------------------------


def test_magic_bytes_on_disk_are_little_endian():
    assert rio.MAGIC_BYTES == bytes([0x0A, 0x23, 0xD7, 0xCE])
    assert rio.IR_SIZE == 24


def test_hand_built_file_with_a_three_part_record(tmp_path):
    whole = _part(0, b"hello")  # 8 + 5 + 3 padding = 16 bytes
    split = _part(1, b"abcd") + _part(2, b"efgh") + _part(3, b"ij")
    tail = _part(0, b"")
    rec, idx = _write(tmp_path, whole + split + tail, f"5\t0\n6\t16\n7\t{16 + len(split)}\n")
    assert len(whole) == 16 and len(split) == 12 + 12 + 12
    with rio.RecordIOReader(rec, idx) as reader:
        assert reader.read(5) == b"hello"
        assert reader.read(6) == b"abcd" + M + b"efgh" + M + b"ij"
        assert reader.read(7) == b""
        assert [o for o, _ in reader.scan()] == [0, 16, 52]
    assert rio.scan_offsets(rec).tolist() == [0, 16, 52]


# -- byte-for-byte agreement with MXNet ------------------------------------------------------------


def test_reader_reads_files_written_by_mxnet(tmp_path):
    rec, idx = _write(tmp_path, MXNET_SMALL_REC, MXNET_SMALL_IDX)
    reader = rio.RecordIOReader(rec, idx)
    assert reader.keys.tolist() == MXNET_KEYS
    assert [reader.read(k) for k in MXNET_KEYS] == MXNET_PAYLOADS
    assert [p for _, p in reader.scan()] == MXNET_PAYLOADS
    assert rio.scan_offsets(rec).tolist() == reader.offsets.tolist()


def test_writer_output_is_byte_identical_to_mxnet(tmp_path):
    with rio.RecordIOWriter(tmp_path / "w.rec", tmp_path / "w.idx") as writer:
        for key, payload in zip(MXNET_KEYS, MXNET_PAYLOADS):
            writer.write(key, payload)
    assert (tmp_path / "w.rec").read_bytes() == MXNET_SMALL_REC
    assert (tmp_path / "w.idx").read_text() == MXNET_SMALL_IDX


def test_image_records_packed_by_mxnet_unpack(tmp_path):
    reader = rio.RecordIOReader(*_write(tmp_path, MXNET_IMG_REC, MXNET_IMG_IDX))
    header, image = rio.unpack_image_record(reader.read(0))
    assert header.flag == 2 and header.label.tolist() == [3.0, 5.0] and image == b""
    header, image = rio.unpack_image_record(reader.read(1))
    assert (header.flag, header.label, header.id, header.id2) == (0, 0.0, 7, 9)
    assert image == b"\xff\xd8\xff\xe0jpeg0"
    header, image = rio.unpack_image_record(reader.read(2))  # a split record with a vector label
    assert header.flag == 2 and header.class_label == 1.0
    assert image == b"\xff\xd8\xff\x00" + M + b"z"
    assert rio.pack_image_record([1.0, 1.0], image) == reader.read(2)


# -- splitting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, pieces",
    [
        (b"abcdefg", [b"abcdefg"]),
        (b"xx" + M + b"yy", [b"xx" + M + b"yy"]),  # unaligned magic is not a split point
        (b"abcd" + M + b"ef", [b"abcd", b"ef"]),
        (M, [b"", b""]),
        (b"abcd" + M + b"efgh" + M + b"ij", [b"abcd", b"efgh", b"ij"]),
        (M + M + M + b"k", [b"", b"", b"", b"k"]),
    ],
)
def test_split_payload_cuts_at_aligned_magic(payload, pieces):
    assert rio.split_payload(payload) == pieces
    assert M.join(pieces) == payload


def test_encoded_split_record_uses_flags_1_2_3():
    data = rio.encode_record(b"abcd" + M + b"efgh" + M + b"ij")
    assert data == _part(1, b"abcd") + _part(2, b"efgh") + _part(3, b"ij")


def test_records_of_2_pow_29_bytes_are_rejected():
    huge = np.broadcast_to(np.uint8(0), (1 << 29,))  # len() without allocating 512 MiB
    with pytest.raises(ValueError, match="2\\^29"):
        rio.encode_record(huge)


def test_round_trip_of_random_payloads_with_injected_magic(tmp_path):
    rng = np.random.default_rng(7)
    payloads = []
    for _ in range(60):
        data = bytearray(rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes())
        for _ in range(int(rng.integers(0, 4))):
            if len(data) >= 4:
                at = int(rng.integers(0, len(data) // 4)) * 4
                data[at : at + 4] = M
        payloads.append(bytes(data))
    keys = rng.permutation(1000)[: len(payloads)]
    with rio.RecordIOWriter(tmp_path / "r.rec", tmp_path / "r.idx") as writer:
        offsets = [writer.write(k, p) for k, p in zip(keys, payloads)]
    reader = rio.RecordIOReader(tmp_path / "r.rec")
    assert reader.offsets.tolist() == offsets
    assert [reader.read(k) for k in keys] == payloads
    assert [reader.read_at(o) for o in offsets] == payloads
    assert [p for _, p in reader.scan()] == payloads
    assert sum(len(rio.split_payload(p)) > 2 for p in payloads) > 0  # some 3+ part records


# -- IRHeader -------------------------------------------------------------------------------------


def test_pack_scalar_label_layout():
    payload = rio.pack_image_record(3, b"IMG", id=5, id2=6)
    assert payload == struct.pack("<IfQQ", 0, 3.0, 5, 6) + b"IMG"
    header, image = rio.unpack_image_record(payload)
    assert header == rio.IRHeader(0, 3.0, 5, 6) and image == b"IMG"


def test_pack_vector_label_prepends_float32_values():
    payload = rio.pack_image_record([7, 1, 0.5], b"IMG")
    assert payload[:24] == struct.pack("<IfQQ", 3, 0.0, 0, 0)
    assert payload[24:36] == np.array([7, 1, 0.5], "<f4").tobytes()
    header, image = rio.unpack_image_record(payload)
    assert header.label.tolist() == [7.0, 1.0, 0.5] and header.class_label == 7.0 and image == b"IMG"


@pytest.mark.parametrize("payload", [b"short", struct.pack("<IfQQ", 4, 0.0, 0, 0) + b"\0" * 12])
def test_unpack_rejects_records_shorter_than_their_header(payload):
    with pytest.raises(ValueError):
        rio.unpack_image_record(payload)


def test_pack_rejects_empty_vector_label():
    with pytest.raises(ValueError):
        rio.pack_image_record([], b"x")


# -- .idx -----------------------------------------------------------------------------------------


def test_load_idx_parses_into_int64_arrays(tmp_path):
    path = tmp_path / "a.idx"
    path.write_bytes(b"3\t0\r\n1\t40\r\n\n2\t4294967300\n")
    keys, offsets = rio.load_idx(path)
    assert keys.dtype == np.int64 and offsets.dtype == np.int64
    assert keys.tolist() == [3, 1, 2] and offsets.tolist() == [0, 40, 4294967300]


def test_load_idx_empty_file(tmp_path):
    (tmp_path / "e.idx").write_bytes(b"")
    keys, offsets = rio.load_idx(tmp_path / "e.idx")
    assert keys.size == 0 and offsets.size == 0


@pytest.mark.parametrize(
    "text, line", [("0\t0\n1\tx\n", 2), ("0\t0\n1\n", 2), ("0\t0\n1\t8\t9\n", 2), ("a\t0\n", 1)]
)
def test_load_idx_names_the_bad_line(tmp_path, text, line):
    (tmp_path / "b.idx").write_text(text)
    with pytest.raises(DataError) as err:
        rio.load_idx(tmp_path / "b.idx")
    assert err.value.path.endswith("b.idx") and err.value.where == f"line {line}"


def test_load_idx_rejects_empty_fields(tmp_path):
    (tmp_path / "n.idx").write_text("0\t0\n1\t\n")
    with pytest.raises(DataError, match="n.idx"):
        rio.load_idx(tmp_path / "n.idx")


def test_rebuild_idx_reproduces_the_original(tmp_path):
    rec, idx = _write(tmp_path, MXNET_IMG_REC, MXNET_IMG_IDX)
    assert rio.rebuild_idx(rec, tmp_path / "new.idx") == 5
    assert (tmp_path / "new.idx").read_text() == MXNET_IMG_IDX


# -- reader lookups and bad input -------------------------------------------------------------------


def test_lookup_with_contiguous_and_sparse_keys(tmp_path):
    rec, _ = _write(tmp_path, MXNET_SMALL_REC, MXNET_SMALL_IDX)
    sparse = rio.RecordIOReader(rec, tmp_path / "t.idx")
    assert not sparse._contiguous and sparse.position(40) == 4
    with pytest.raises(KeyError):
        sparse.position(41)
    dense = rio.RecordIOReader(rec, index=(np.arange(9) + 100, sparse.offsets))
    assert dense._contiguous and dense.read(106) == MXNET_PAYLOADS[6] and 109 not in dense


def test_missing_idx_is_scanned_in_memory(tmp_path):
    (tmp_path / "s.rec").write_bytes(MXNET_SMALL_REC)
    reader = rio.RecordIOReader(tmp_path / "s.rec")
    assert reader.index_origin == "scan" and reader.keys.tolist() == list(range(9))
    assert reader.read(6) == MXNET_PAYLOADS[6]


@pytest.mark.parametrize("idx, bad_key", [("0\t0\n1\t188\n", 1), ("0\t0\n1\t10\n", 1), ("0\t0\n3\t-4\n", 3)])
def test_idx_offsets_past_the_end_or_off_grid(tmp_path, idx, bad_key):
    rec, idx_path = _write(tmp_path, MXNET_SMALL_REC, idx)
    with pytest.raises(DataError) as err:
        rio.RecordIOReader(rec, idx_path)
    assert err.value.path == str(idx_path) and err.value.where == f"key {bad_key}"


def test_duplicate_keys_are_rejected(tmp_path):
    rec, idx_path = _write(tmp_path, MXNET_SMALL_REC, "4\t0\n4\t8\n")
    with pytest.raises(DataError, match="more than once"):
        rio.RecordIOReader(rec, idx_path)


def test_offset_inside_a_payload_is_not_a_record(tmp_path):
    rec, idx = _write(tmp_path, _part(0, b"abcdefgh"), "0\t0\n1\t8\n")
    reader = rio.RecordIOReader(rec, idx)
    with pytest.raises(DataError) as err:
        reader.read(1)
    assert err.value.where == "offset 8" and "wrong magic" in err.value.reason


def test_offset_on_a_continuation_part_is_not_a_record(tmp_path):
    rec, idx = _write(tmp_path, _part(1, b"abcd") + _part(3, b"ef"), "0\t0\n1\t12\n")
    reader = rio.RecordIOReader(rec, idx)
    assert reader.read(0) == b"abcd" + M + b"ef"
    with pytest.raises(DataError, match="continuation part"):
        reader.read(1)


def test_truncated_rec(tmp_path):
    rec, idx = _write(tmp_path, _part(0, b"abcd") + _part(0, b"efghijkl")[:-3], "0\t0\n1\t12\n")
    reader = rio.RecordIOReader(rec, idx)
    with pytest.raises(DataError) as err:
        reader.read(1)
    assert err.value.path == str(rec) and err.value.where == "offset 12" and "truncated" in err.value.reason
    for run in (lambda: list(reader.scan()), lambda: rio.scan_offsets(rec)):
        with pytest.raises(DataError, match="truncated"):
            run()


def test_split_record_without_last_part(tmp_path):
    rec, idx = _write(tmp_path, _part(1, b"abcd") + _part(2, b"efgh"), "0\t0\n")
    with pytest.raises(DataError, match="no last part"):
        rio.scan_offsets(rec)
    with pytest.raises(DataError, match="truncated part header"):
        rio.RecordIOReader(rec, idx).read(0)


def test_wrong_magic_in_scan(tmp_path):
    (tmp_path / "w.rec").write_bytes(_part(0, b"abcd") + b"\x00" * 12)
    with pytest.raises(DataError) as err:
        rio.scan_offsets(tmp_path / "w.rec")
    assert err.value.where == "offset 12" and "0x00000000" in err.value.reason


# -- batched reads ----------------------------------------------------------------------------------


def _comparable(result):
    """A read's result as something ``==`` compares: the bytes, or the error's type, text and location."""
    if isinstance(result, Exception):
        return type(result), str(result), getattr(result, "where", None), getattr(result, "reason", None)
    return bytes(result)


def _outcome(call):
    try:
        return _comparable(call())
    except (DataError, KeyError) as exc:
        return _comparable(exc)


def _read_many_matches_read(reader, keys, views=False):
    """Check ``reader.read_many(keys)`` against ``reader.read`` key by key; return what it gave."""
    many = reader.read_many(keys, views=views)
    assert [_comparable(r) for r in many] == [_outcome(lambda k=k: reader.read(k)) for k in keys]
    return many


# Files with every kind of bad record: (bytes, idx text, {key: expected error or None for a good record}).
_WHOLE = _part(0, b"hello")  # 0: good (16 bytes)
_SPLIT = _part(1, b"abcd") + _part(3, b"ef")  # 16: good split record; 24 lies in its payload; 28 is its tail
_INTERRUPTED = _part(1, b"wxyz") + _part(0, b"qq")  # 40: first part followed by a whole part at 52
_GOOD_AND_BAD = {1: None, 2: None, 3: "wrong magic", 4: "continuation part", 5: "is interrupted", 6: None}
_BAD_FILES = {
    "cut": (_WHOLE + _SPLIT + _INTERRUPTED + _part(0, b"efghijkl")[:-3],  # 64: whole part cut short
            {**_GOOD_AND_BAD, 7: "truncated record"}),
    "unfinished": (_WHOLE + _SPLIT + _INTERRUPTED + _part(1, b"abcd") + _part(2, b"efgh"),  # no last part
                   {**_GOOD_AND_BAD, 7: "truncated part header", 8: "continuation part"}),
}
_OFFSETS = {1: 0, 2: 16, 3: 24, 4: 28, 5: 40, 6: 52, 7: 64, 8: 76}


def test_read_many_equals_read_on_mxnet_records_in_any_order(tmp_path):
    reader = rio.RecordIOReader(*_write(tmp_path, MXNET_SMALL_REC, MXNET_SMALL_IDX))
    keys = [80, 0, 30, 70, 10, 70, 50, 20, 40, 60, 0, 5, -10, 90]  # repeats and absent keys
    many = _read_many_matches_read(reader, keys)
    assert many[:4] == [MXNET_PAYLOADS[8], MXNET_PAYLOADS[0], MXNET_PAYLOADS[3], MXNET_PAYLOADS[7]]
    assert all(type(x) is bytes for x in many[:11])
    assert [type(x) for x in many[11:]] == [KeyError] * 3 and many[11].args == (5,)
    assert reader.read_many([]) == [] and reader.read_many(np.array([], dtype=np.int64)) == []


def test_read_many_views_are_zero_copy_and_close_still_works(tmp_path):
    reader = rio.RecordIOReader(*_write(tmp_path, MXNET_SMALL_REC, MXNET_SMALL_IDX))
    views = _read_many_matches_read(reader, MXNET_KEYS[::-1], views=True)
    assert type(views[-2]) is memoryview and [bytes(v) for v in views] == MXNET_PAYLOADS[::-1]
    reader.close()  # a view still refers to the map: closing must not fail
    assert bytes(views[-2]) == MXNET_PAYLOADS[1] and reader.read_many([10]) == [MXNET_PAYLOADS[1]]


@pytest.mark.parametrize("name", sorted(_BAD_FILES))
def test_read_many_gives_the_errors_read_raises(tmp_path, name):
    data, expected = _BAD_FILES[name]
    rec, idx = _write(tmp_path, data, "".join(f"{k}\t{_OFFSETS[k]}\n" for k in expected))
    reader = rio.RecordIOReader(rec, idx)
    keys = list(expected)
    for order in (keys, keys[::-1], keys + keys[:3] + [99]):
        many = _read_many_matches_read(reader, order)
    for key, result in zip(keys, many):
        if expected[key] is None:
            assert type(result) is bytes
        else:
            assert isinstance(result, DataError) and result.path == str(rec)
            assert expected[key] in result.reason
    assert many[5] == b"qq" and many[1] == b"abcd" + M + b"ef"


def test_read_many_when_the_file_shrank_after_opening(tmp_path):
    rec, idx = _write(tmp_path, MXNET_SMALL_REC, MXNET_SMALL_IDX)
    reader = rio.RecordIOReader(rec, idx)
    rec.write_bytes(MXNET_SMALL_REC[:100])  # key 60 now runs past the end, 70 and 80 start past it
    many = _read_many_matches_read(reader, MXNET_KEYS)
    assert all(isinstance(x, DataError) for x in many[6:]) and many[:6] == MXNET_PAYLOADS[:6]
    rec.write_bytes(b"")  # nothing left to map: every read goes through read_at and fails like it
    reader.close()
    _read_many_matches_read(reader, MXNET_KEYS)


_TRUNCATE_WHILE_MAPPED = """
import sys
from fr_data.io.errors import DataError
from fr_data.formats.recordio import RecordIOReader
reader = RecordIOReader(sys.argv[1], sys.argv[2])
keys = list(range(40))
first = reader.read_many(keys)  # maps the whole file
assert all(r == bytes([k]) * 1000 for k, r in zip(keys, first))
with open(sys.argv[1], "r+b") as f:  # same inode, shorter: pages past the new end are gone
    f.truncate(2000)
again = reader.read_many(keys)
print(sum(isinstance(r, bytes) for r in again), sum(isinstance(r, DataError) for r in again))
"""


def test_read_many_after_the_mapped_file_was_truncated(tmp_path):
    rec, idx = tmp_path / "t.rec", tmp_path / "t.idx"
    writer = rio.RecordIOWriter(rec, idx)
    for key in range(40):  # 40 records of ~1 KB: ten pages, so most records lie on lost pages
        writer.write(key, bytes([key]) * 1000)
    writer.close()
    # in a child process: touching a lost page of a map is a SIGBUS, which would kill the test run
    done = subprocess.run([sys.executable, "-c", _TRUNCATE_WHILE_MAPPED, str(rec), str(idx)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, f"child died ({done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.split() == ["1", "39"]  # the first record survives, the rest are DataErrors


# -- fork safety and pickling ----------------------------------------------------------------------


def test_reader_reopens_its_handle_in_a_forked_child(tmp_path):
    rec, idx = _write(tmp_path, MXNET_SMALL_REC, MXNET_SMALL_IDX)
    reader = rio.RecordIOReader(rec, idx)
    assert reader.read(60) == MXNET_PAYLOADS[6]
    parent_fd = reader._fd
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: read, report whether a fresh descriptor was opened
        try:
            ok = reader.read(70) == MXNET_PAYLOADS[7]
            ok = ok and reader._fd != parent_fd and reader._pid == os.getpid()
            os.write(write_end, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 1) == b"1"
    os.close(read_end)
    assert reader._fd == parent_fd and reader.read(80) == MXNET_PAYLOADS[8]


def test_reader_pickles_without_its_handle(tmp_path):
    reader = rio.RecordIOReader(*_write(tmp_path, MXNET_SMALL_REC, MXNET_SMALL_IDX))
    reader.read(10)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._fd is None and clone.read(50) == MXNET_PAYLOADS[5]


# -- writer atomicity and the InsightFace layout ----------------------------------------------------


def test_writer_files_appear_only_when_closed(tmp_path):
    writer = rio.RecordIOWriter(tmp_path / "a.rec", tmp_path / "a.idx")
    writer.write(0, b"x")
    assert not (tmp_path / "a.rec").exists() and not (tmp_path / "a.idx").exists()
    writer.close()
    assert (tmp_path / "a.rec").exists() and (tmp_path / "a.idx").read_text() == "0\t0\n"
    with pytest.raises(RuntimeError), rio.RecordIOWriter(tmp_path / "b.rec", tmp_path / "b.idx") as w:
        w.write(0, b"x")
        raise RuntimeError("boom")
    aborted = rio.RecordIOWriter(tmp_path / "c.rec", tmp_path / "c.idx")
    aborted.write(0, b"x")
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.idx", "a.rec"]


def _records(folder) -> dict[int, tuple[rio.IRHeader, bytes]]:
    reader = rio.RecordIOReader(folder / "train.rec", folder / "train.idx")
    return {int(k): rio.unpack_image_record(reader.read(k)) for k in reader.keys}


def test_write_insightface_layout(tmp_path):
    items = [(0, b"a0"), (0, b"a1" + M), (1, b"b0"), (3, b"d0"), (3, b"d1")]  # class 2 has no images
    assert rio.write_insightface(tmp_path, items) == {"num_images": 5, "num_classes": 4}
    recs = _records(tmp_path)
    assert sorted(recs) == list(range(10))  # header + 5 images + 4 identity records
    assert recs[0][0].label.tolist() == [6.0, 10.0] and recs[0][1] == b""
    assert [(recs[k][0].label, recs[k][1]) for k in range(1, 6)] == [(float(a), b) for a, b in items]
    ranges = [recs[k][0].label.tolist() for k in range(6, 10)]
    assert ranges == [[1, 3], [3, 4], [4, 4], [4, 6]]
    assert (tmp_path / "property").read_text() == "4,112,112\n"


def test_write_insightface_vector_labels_and_headerless(tmp_path):
    items = [(1, b"x"), (0, b"y"), (1, b"z")]
    assert rio.write_insightface(tmp_path, items, vector_label=True, shuffled=True) == {
        "num_images": 3, "num_classes": 2}
    recs = _records(tmp_path)
    assert sorted(recs) == [0, 1, 2]
    assert [recs[k][0].label.tolist() for k in range(3)] == [[1, 1], [0, 1], [1, 1]]
    assert [recs[k][1] for k in range(3)] == [b"x", b"y", b"z"]


def test_write_insightface_requires_grouped_ascending_labels(tmp_path):
    with pytest.raises(ValueError, match="grouped"):
        rio.write_insightface(tmp_path, [(1, b"x"), (0, b"y")])
    with pytest.raises(ValueError, match="non-negative integers"):
        rio.write_insightface(tmp_path / "b", [(0.5, b"x")])
    assert not (tmp_path / "train.rec").exists()


def test_scan_offsets_can_stop_at_a_truncated_tail(tmp_path):
    (tmp_path / "c.rec").write_bytes(_part(0, b"abcd") + _part(1, b"efgh") + _part(3, b"ij")[:6])
    seen = []
    assert rio.scan_offsets(tmp_path / "c.rec", on_truncated=seen.append).tolist() == [0]
    assert len(seen) == 1 and seen[0].where == "offset 24" and "truncated part header" in seen[0].reason
