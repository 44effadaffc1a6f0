"""fr_data.io.publish: staged folders, the overwrite rule, an overwrite killed between its renames, and
write errors that name the path."""

from __future__ import annotations

import errno
import os
import signal

import pytest

from fr_data.io.errors import DataError, WriteError
from fr_data.io.publish import (
    check_apart,
    check_target,
    lock_path,
    output_lock,
    publish,
    staged_folder,
    staging_dir,
)


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


# -- one run at a time per output (issue 19, point 3) --------------------------------------------
def _hold_lock_in_child(target, then_kill: bool) -> tuple[int, int, int]:
    """Fork a child that takes ``target``'s lock, says so on a pipe and then waits for a byte on another
    pipe (or SIGKILLs itself when ``then_kill``). Returns (pid, the parent's read end, its write end)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery runs here
        code = 1
        try:
            with output_lock(target):
                os.write(ready_w, b"x")
                if then_kill:
                    os.kill(os.getpid(), signal.SIGKILL)
                os.read(go_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    assert os.read(ready_r, 1) == b"x"
    return pid, ready_r, go_w


def test_a_second_process_is_refused_naming_the_folder_and_the_holder(tmp_path):
    target = tmp_path / "OUT"
    pid, ready, go = _hold_lock_in_child(target, then_kill=False)
    try:
        with pytest.raises(DataError) as info, staged_folder(target, overwrite=True):
            pass
        message = str(info.value)
        assert message.startswith(f"{target}: ") and f"process {pid}" in message and "\n" not in message
        assert not staging_dir(target).exists() and not target.exists()  # the refused run touched nothing
    finally:
        os.write(go, b"x")
        assert os.waitpid(pid, 0)[1] == 0
        os.close(ready)
        os.close(go)
    assert not lock_path(target).exists()  # released and removed by its holder
    with staged_folder(target, overwrite=False) as stage:
        (stage / "a").write_text("mine")
    assert (target / "a").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


def test_the_lock_of_a_killed_process_does_not_block_the_next_run(tmp_path):
    target = tmp_path / "OUT"
    pid, ready, go = _hold_lock_in_child(target, then_kill=True)
    assert os.WTERMSIG(os.waitpid(pid, 0)[1]) == signal.SIGKILL
    os.close(ready)
    os.close(go)
    assert lock_path(target).read_text().strip() == str(pid)  # left behind by the killed run
    with staged_folder(target, overwrite=False) as stage:
        assert lock_path(target).read_text().strip() == str(os.getpid())
        (stage / "a").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


def test_the_holder_may_nest_its_own_lock(tmp_path):
    target = tmp_path / "OUT"
    with output_lock(target), staged_folder(target, overwrite=False) as stage:
        (stage / "a").write_text("x")
        assert lock_path(target).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


@pytest.mark.parametrize("out, relation", [("RUN", "is"), (".", "contains"), ("RUN/report", "lies inside"),
                                           ("link", "is"), ("link/x", "lies inside")])
def test_an_output_that_is_contains_or_lies_inside_an_input_is_refused(tmp_path, out, relation):
    run = tmp_path / "RUN"
    run.mkdir()
    (tmp_path / "link").symlink_to(run)
    with pytest.raises(DataError) as info:
        check_apart(tmp_path / out, tmp_path.parent / "elsewhere", None, run)
    message = str(info.value)
    assert f"the output {relation} the input {run}" in message and message.startswith(str(tmp_path / out))


def test_outputs_beside_the_inputs_are_accepted(tmp_path):
    (tmp_path / "RUN").mkdir()
    check_apart(tmp_path / "RUN2", tmp_path / "RUN", None)  # a name prefix is not containment
    check_apart(tmp_path / "report", tmp_path / "RUN", tmp_path / "RUN" / "samples.parquet")
