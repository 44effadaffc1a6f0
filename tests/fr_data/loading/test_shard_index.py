"""Random access into tar shards by key: equal to sequential reading, cached, fork/pickle safe, strict."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

import fr_data.loading.shard_index as shard_index
from fr_data.folders.shard_folder import SHARD_INDEX_FILE, list_shards
from fr_data.formats.tario import TarWriter, group_members
from fr_data.io.errors import DataError
from fr_data.loading.shard_index import ShardIndex, build_index, scan_members
from tests.fr_train.data.builders import make_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "shards"
    make_shards(out, [i % 5 for i in range(23)], per_shard=6)
    return out


def test_random_access_equals_sequential_read(shards):
    index = ShardIndex.open(shards)
    sequential = [(key, members) for shard in list_shards(shards) for key, members in group_members(shard)]
    assert len(index) == len(sequential) == 23
    rng = np.random.default_rng(0)
    for slot in rng.permutation(len(sequential)):  # random order: no reliance on a file position
        key, members = sequential[slot]
        assert index.read(key) == members
        assert index.read_image(key) == members["jpg"]


def test_locate_gives_the_image_bytes_in_its_shard(shards):
    index = ShardIndex.open(shards)
    key, members = next(group_members(list_shards(shards)[2]))
    shard_ids, offsets, sizes = index.locate([key])
    assert index.shards[shard_ids[0]].name == list_shards(shards)[2].name
    with open(index.shards[shard_ids[0]], "rb") as f:
        f.seek(offsets[0])
        assert f.read(sizes[0]) == members["jpg"]


def test_index_is_cached_beside_the_shards_and_rebuilt_when_a_shard_changes(shards, monkeypatch):
    ShardIndex.open(shards)
    assert (shards / SHARD_INDEX_FILE).is_file()
    calls = []
    real = shard_index.build_index
    monkeypatch.setattr(shard_index, "build_index", lambda paths: calls.append(1) or real(paths))
    ShardIndex.open(shards)
    assert calls == []  # served from the cache
    first = list_shards(shards)[0]
    stat = first.stat()
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    ShardIndex.open(shards)
    assert calls == [1]  # stale cache detected and rebuilt


def test_unknown_key_is_a_data_error_naming_it(shards):
    index = ShardIndex.open(shards)
    with pytest.raises(DataError, match="key no-such-key"):
        index.read("no-such-key")


def test_pickled_index_reopens_its_files(shards):
    index = ShardIndex.open(shards)
    key = str(index.keys[5].decode())
    expected = index.read_image(key)
    clone = pickle.loads(pickle.dumps(index))
    assert clone._fds == {}
    assert clone.read_image(key) == expected
    index.close()
    assert index.read_image(key) == expected  # reopens after close


def test_forked_child_reads_the_same_bytes(shards):
    index = ShardIndex.open(shards)
    keys = [k.decode() for k in index.keys[:4]]
    parent = [index.read_image(k) for k in keys]  # descriptors opened before the fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: same descriptors, pread needs no shared position
        os.close(read_end)
        ok = all(index.read_image(k) == b for k, b in zip(reversed(keys), reversed(parent)))
        os.write(write_end, b"1" if ok else b"0")
        os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert [index.read_image(k) for k in keys] == parent


def test_scan_matches_tarfile_offsets_including_pax_long_names(tmp_path):
    path = tmp_path / "other.tar"
    long_key = "d" * 120
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((f"{long_key}.cls", b"3"), (f"{long_key}.jpg", b"x" * 700), ("short.cls", b"1"),
                           ("short.jpg", b"y" * 10)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tar:
        expected = [(m.name, m.offset, m.offset_data, m.size) for m in tar.getmembers()]
    assert [(m.name, m.header, m.offset, m.size) for m in scan_members(path)] == expected
    table = build_index([path])
    assert table.column("key").to_pylist() == [long_key, "short"]
    index = ShardIndex([path], table)
    assert index.read(long_key) == {"cls": b"3", "jpg": b"x" * 700}


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with open(path, "wb") as f:
        writer = TarWriter(f)
        writer.add_many(members)
        writer.finish()


def test_corrupt_header_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.tar"
    _write_tar(path, [("a.cls", b"1"), ("a.jpg", b"z" * 600)])
    raw = bytearray(path.read_bytes())
    raw[512 + 512] ^= 0xFF  # first byte of the second header's name
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"bad\.tar \(offset 1024\): tar header checksum mismatch"):
        build_index([path])


def test_key_in_two_shards_and_sample_without_image_are_errors(tmp_path):
    _write_tar(tmp_path / "s0.tar", [("k1.cls", b"1"), ("k1.jpg", b"a")])
    _write_tar(tmp_path / "s1.tar", [("k1.cls", b"1"), ("k1.jpg", b"b")])
    with pytest.raises(DataError, match="key k1.*more than one place"):
        build_index([tmp_path / "s0.tar", tmp_path / "s1.tar"])
    _write_tar(tmp_path / "s2.tar", [("k2.cls", b"1"), ("k2.json", b"{}")])
    with pytest.raises(DataError, match="key k2.*exactly one image"):
        build_index([tmp_path / "s2.tar"])


def test_truncated_shard_is_reported(tmp_path):
    path = tmp_path / "cut.tar"
    _write_tar(path, [("a.cls", b"1"), ("a.jpg", b"q" * 3000)])
    path.write_bytes(path.read_bytes()[:2048])
    with pytest.raises(DataError, match="runs past the end"):
        build_index([path])
