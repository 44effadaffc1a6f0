import pytest

from fr_data.io.atomic import atomic_open, atomic_path, atomic_write_text, remove_stale_temps


def test_atomic_write_replaces_target(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_write_leaves_target_and_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_target_absent_until_block_ends(tmp_path):
    target = tmp_path / "sub" / "b.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"xyz")
        assert not target.exists()
    assert target.read_bytes() == b"xyz"


def test_remove_stale_temps(tmp_path):
    (tmp_path / ".x.parquet.tmp-abc").write_bytes(b"")
    (tmp_path / "keep.parquet").write_bytes(b"")
    gone = remove_stale_temps(tmp_path)
    assert [p.name for p in gone] == [".x.parquet.tmp-abc"]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.parquet"]


def test_written_file_gets_umask_mode_not_0600(tmp_path):
    import os
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "m.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "m.txt").stat().st_mode & 0o777 == 0o644


def test_a_full_disk_names_the_target_and_leaves_nothing(tmp_path):
    import errno

    from fr_data.io.errors import WriteError

    target = tmp_path / "out.bin"
    with pytest.raises(WriteError, match=r"out\.bin: cannot write: No space left on device") as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):  # other errors inside the block pass through unchanged
        with atomic_path(target):
            open(tmp_path / "missing" / "x")
    assert list(tmp_path.iterdir()) == []
