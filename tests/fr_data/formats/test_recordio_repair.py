"""fr_data.formats.recordio.repair and walk_records: damaged files against hand-placed damage."""

from __future__ import annotations

import numpy as np
import pytest

from fr_data.formats import recordio as rio
from fr_data.formats.recordio.index import walk_records
from fr_data.formats.recordio.repair import read_idx_lines, repair_index
from fr_data.io.errors import DataError
from tests.fr_data.formats._recordio_fixtures import M

# Ten records; 3 and 7 are split around a 4-aligned magic word (three parts each).
PAYLOADS = [bytes([i]) * (20 + 4 * i) if i not in (3, 7) else b"abcd" + M + b"efgh" + M + b"ij"
            for i in range(10)]


@pytest.fixture
def rec(tmp_path):
    path = tmp_path / "d.rec"
    with rio.RecordIOWriter(path, tmp_path / "d.idx") as writer:
        for i, payload in enumerate(PAYLOADS):
            writer.write(i, payload)
    return path


def offsets_of(rec):
    return rio.load_idx(rec.with_suffix(".idx"))[1]


def test_walk_of_a_clean_file_equals_the_index(rec):
    walk = walk_records(rec)
    assert walk.offsets.tolist() == offsets_of(rec).tolist() and walk.damaged == []


def test_walk_resumes_after_a_zeroed_header_and_a_broken_split_record(rec):
    offsets = offsets_of(rec)
    data = bytearray(rec.read_bytes())
    data[offsets[2]:offsets[2] + 8] = bytes(8)  # record 2's header
    data[offsets[7] + 20:offsets[7] + 28] = bytes(8)  # the second part header of split record 7
    rec.write_bytes(bytes(data))
    walk = walk_records(rec)
    assert walk.offsets.tolist() == np.delete(offsets, [2, 7]).tolist()
    assert [(s.start, s.end) for s in walk.damaged] == [(offsets[2], offsets[3]), (offsets[7], offsets[8])]
    assert "wrong magic" in walk.damaged[0].error.reason


def test_walk_does_not_follow_a_damaged_length_past_good_records(rec):
    offsets = offsets_of(rec)
    data = bytearray(rec.read_bytes())
    data[offsets[1] + 4:offsets[1] + 8] = int(offsets[6] - offsets[1] - 8).to_bytes(4, "little")  # ends at 6
    data[offsets[1] + 8] ^= 0xFF  # and record 1's payload changed: no use guessing
    rec.write_bytes(bytes(data))
    walk = walk_records(rec)
    # the walk accepts the long record 1 (its header is valid) but the index still names 2..5
    assert offsets[2] not in walk.offsets.tolist()
    repaired = repair_index(rec, rec.with_suffix(".idx"))
    assert repaired.keys.tolist() == list(range(10)) and repaired.dropped == []


def test_truncated_tail_with_an_intact_index(rec):
    offsets = offsets_of(rec)
    rec.write_bytes(rec.read_bytes()[:offsets[8] + 10])
    repaired = repair_index(rec, rec.with_suffix(".idx"))
    assert repaired.keys.tolist() == list(range(8)) and repaired.offsets.tolist() == offsets[:8].tolist()
    assert [(d.key, d.where.split(",")[0]) for d in repaired.dropped] == [(8, "key 8"), (9, "key 9")]
    assert "holds no complete record: truncated record" in repaired.dropped[0].reason
    assert "not a record start" in repaired.dropped[1].reason
    assert any("ends inside a record" in n for n in repaired.notes)


def test_dropped_garbled_and_duplicated_lines(rec):
    idx = rec.with_suffix(".idx")
    lines = idx.read_text().splitlines(keepends=True)
    lines[4] = "4\tfour\n"  # garbled: record 4 recovered from its neighbours 3 and 5
    lines[8] = lines[8].replace("8\t", "1\t")  # key 1 twice: both lines out, both records re-keyed
    del lines[6]  # dropped: record 6 recovered from 5 and 7
    idx.write_text("".join(lines))
    parsed = read_idx_lines(idx)
    assert parsed.bad == [(5, b"4\tfour\n")]
    repaired = repair_index(rec, idx)
    assert repaired.keys.tolist() == list(range(10))
    assert repaired.offsets.tolist() == offsets_of_clean(rec)
    assert sorted((d.where, d.reason.split(" is")[0]) for d in repaired.dropped) == [
        ("key 1, line 2", "key 1"), ("key 1, line 8", "key 1"), ("line 5", "expected '<key>\\t<offset>' integers, got b'4\\tfour\\n'")]


def offsets_of_clean(rec):
    return walk_records(rec).offsets.tolist()


def test_an_unnamed_record_whose_key_does_not_fit_is_listed(rec):
    idx = rec.with_suffix(".idx")
    lines = idx.read_text().splitlines(keepends=True)
    lines[5] = lines[5].replace("5\t", "50\t")  # record 5 keyed 50: 4 and 6 leave no room for 5 records
    del lines[4]
    idx.write_text("".join(lines))
    repaired = repair_index(rec, idx)
    assert 4 not in repaired.keys.tolist() and 50 in repaired.keys.tolist()
    assert [d.where for d in repaired.dropped] == [f"offset {offsets_of_clean(rec)[4]}"]
    assert "cannot be inferred" in repaired.dropped[0].reason


def test_without_an_index_keys_count_back_from_the_header_after_damage(rec):
    offsets = offsets_of(rec)
    data = bytearray(rec.read_bytes())
    data[offsets[4]:offsets[4] + 8] = bytes(8)
    rec.write_bytes(bytes(data))
    plain = repair_index(rec, None)
    assert plain.keys.tolist() == list(range(9))  # shifted after the damage: said in a note
    assert any("may be shifted" in n for n in plain.notes)
    counted = repair_index(rec, None, record_count=10)
    assert counted.keys.tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert counted.offsets.tolist() == np.delete(offsets, 4).tolist()
    data[offsets[7]:offsets[7] + 8] = bytes(8)  # a second damaged span: 5 and 6 lie between the two
    rec.write_bytes(bytes(data))
    between = repair_index(rec, None, record_count=10)
    assert between.keys.tolist() == [0, 1, 2, 3, 8, 9]
    assert sorted(d.where for d in between.dropped if "cannot be known" in d.reason) == [
        f"offset {offsets[5]}", f"offset {offsets[6]}"]


def test_scan_offsets_keeps_its_strict_contract(rec):
    offsets = offsets_of(rec)
    data = rec.read_bytes()
    rec.write_bytes(data[:offsets[2]] + bytes(8) + data[offsets[2] + 8:])
    with pytest.raises(DataError, match="wrong magic"):
        rio.scan_offsets(rec, on_truncated=lambda e: None)  # damage before the end is never a truncation
