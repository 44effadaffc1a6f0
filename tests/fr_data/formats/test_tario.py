"""Tests of fr_data.formats.tario against Python's tarfile (an independent reader and writer)."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from fr_data.formats.tario import BLOCK, RECORD, TarWriter, group_members, iter_members
from fr_data.io.errors import DataError


def test_writer_output_read_by_tarfile_with_fixed_metadata():
    members = [("0001.cls", b"7"), ("0001.jpg", b"\xff\xd8" + bytes(range(256)) * 3), ("0001.json", b"{}")]
    buf = io.BytesIO()
    writer = TarWriter(buf)
    writer.add(*members[0])
    writer.add_many(members[1:])
    digest = writer.finish()
    raw = buf.getvalue()
    assert len(raw) % RECORD == 0 and writer.size == len(raw)
    assert digest == hashlib.sha256(raw).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        infos = tar.getmembers()
        assert [(i.name, i.size, i.mtime, i.uid, i.gid, i.uname, i.mode) for i in infos] == [
            (n, len(d), 0, 0, 0, "", 0o644) for n, d in members]
        assert [tar.extractfile(i).read() for i in infos] == [d for _, d in members]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_reader_handles_tarfile_archives_with_long_names_and_dirs(fmt):
    buf = io.BytesIO()
    long_name = "deep/" + "x" * 120 + ".jpg"
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        folder = tarfile.TarInfo("deep")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in [(long_name, b"abc"), ("short.cls", b"1")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert list(iter_members(io.BytesIO(buf.getvalue()))) == [(long_name, b"abc"), ("short.cls", b"1")]


def test_reader_reports_corrupt_header_and_truncation():
    buf = io.BytesIO()
    writer = TarWriter(buf)
    writer.add("a.jpg", b"z" * 1000)
    writer.add("b.jpg", b"y" * 10)
    writer.finish()
    raw = bytearray(buf.getvalue())
    second = BLOCK + 1024  # header of the second member
    broken = bytes(raw[:second]) + b"q" + bytes(raw[second + 1:])
    with pytest.raises(DataError, match=f"x.tar \\(offset {second}\\): tar header checksum mismatch"):
        list(iter_members(io.BytesIO(broken), "x.tar"))
    with pytest.raises(DataError, match="offset 512.*truncated"):
        list(iter_members(io.BytesIO(bytes(raw[:800])), "x.tar"))


def test_group_members_requires_adjacent_samples(tmp_path):
    path = tmp_path / "s.tar"
    with open(path, "wb") as stream:
        writer = TarWriter(stream)
        writer.add_many([("k1.cls", b"0"), ("k1.jpg", b"a"), ("k2.cls", b"1"), ("k1.json", b"{}")])
        writer.finish()
    with pytest.raises(DataError, match="members of sample k1 are not adjacent"):
        list(group_members(path))


def test_add_sample_matches_add_many_byte_for_byte():
    members = [("cls", b"7"), ("jpg", b"\xff\xd8" + b"x" * 5000), ("json", b"{}")]  # big + small sizes
    fast, slow = io.BytesIO(), io.BytesIO()
    fast_writer, slow_writer = TarWriter(fast), TarWriter(slow)
    fast_writer.add_sample("000000042", members)
    assert fast.getvalue() == b""  # buffered until flush/finish
    slow_writer.add_many([(f"000000042.{ext}", data) for ext, data in members])
    assert fast_writer.finish() == slow_writer.finish() and fast.getvalue() == slow.getvalue()
    with tarfile.open(fileobj=io.BytesIO(fast.getvalue())) as tar:
        assert tar.getnames() == ["000000042.cls", "000000042.jpg", "000000042.json"]
    with pytest.raises(ValueError, match="does not fit"):  # too long for the fast path: add_many's error
        TarWriter(io.BytesIO()).add_sample("k" * 99, members)


@pytest.mark.parametrize("key", ["0", "000000042", "k" * 80])
def test_add_sample_matches_add_many_across_size_fields(key):
    sizes = [0, 1, 511, 512, 4095, 4096, 4097, 0o7777, 0o10000, 65_535, 0o7777777, (1 << 20) + 7]
    members = [(ext, bytes([n % 251]) * n) for ext, n in zip(["cls", "jpg", "json", "png"] * 3, sizes)]
    fast, slow = io.BytesIO(), io.BytesIO()
    fast_writer, slow_writer = TarWriter(fast), TarWriter(slow)
    for start in range(0, len(members), 3):
        fast_writer.add_sample(key, members[start:start + 3])
        slow_writer.add_many([(f"{key}.{ext}", data) for ext, data in members[start:start + 3]])
    assert fast_writer.finish() == slow_writer.finish() and fast.getvalue() == slow.getvalue()


def test_size_field_sums_up_to_the_ustar_limit():
    from fr_data.formats.tario import _size_sum

    for size in [0, 4095, 4096, 0o7777_7777, 0o1_0000_0000, 8 ** 11 - 1, 123_456_789, 8 ** 10 + 5]:
        assert _size_sum(size) == sum(b"%011o" % size)
