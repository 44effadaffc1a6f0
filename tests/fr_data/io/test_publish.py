"""fr_data.io.publish: staged folders, the overwrite rule, an overwrite killed between its renames, and
write errors that name the path."""

from __future__ import annotations

import errno
import os

import pytest

from fr_data.io.errors import DataError, WriteError
from fr_data.io.publish import check_target, publish, staged_folder, staging_dir


def test_staged_folder_appears_only_when_complete(tmp_path):
    target = tmp_path / "OUT"
    with pytest.raises(RuntimeError), staged_folder(target, overwrite=False) as stage:
        (stage / "a.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with staged_folder(target, overwrite=False) as stage:
        (stage / "a.txt").write_text("done")
    assert (target / "a.txt").read_text() == "done" and list(tmp_path.iterdir()) == [target]
    with pytest.raises(DataError, match="--overwrite"):
        check_target(target, overwrite=False)


def test_an_overwrite_killed_between_its_renames_gets_the_old_folder_back(tmp_path):
    target = tmp_path / "OUT"
    target.mkdir()
    (target / "v").write_text("old")
    aside = tmp_path / ".OUT.old-12345"  # what publish() leaves when killed after its first rename
    os.replace(target, aside)
    check_target(target, overwrite=True)
    assert (target / "v").read_text() == "old" and not aside.exists()
    with pytest.raises(DataError, match="already exists"):  # and the overwrite rule holds again
        check_target(target, overwrite=False)


def test_leftover_old_folders_beside_a_new_target_are_removed(tmp_path):
    target = tmp_path / "OUT"
    target.mkdir()
    (tmp_path / ".OUT.old-1").mkdir()
    check_target(target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


def test_publish_replaces_with_overwrite(tmp_path):
    target, staging = tmp_path / "OUT", staging_dir(tmp_path / "OUT")
    target.mkdir()
    staging.mkdir()
    (staging / "new").write_text("x")
    publish(staging, target, overwrite=True)
    assert [p.name for p in target.iterdir()] == ["new"] and sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


def test_a_full_disk_while_staging_names_the_folder(tmp_path, monkeypatch):
    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pathlib.Path.mkdir", no_space)
    with pytest.raises(WriteError, match=r"\.OUT\.partial: cannot write: No space left") as info:
        with staged_folder(tmp_path / "OUT", overwrite=False):
            pass
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
