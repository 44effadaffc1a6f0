"""Publishing an output folder atomically: it appears under its final name only when complete.

Every tool that writes a folder (embeddings, mining runs, review pages, experiments) writes into a
staging folder ``.<name>.partial`` beside the target and renames it to the target at the end. An
interrupted run leaves only the hidden staging folder, which the next run clears; an existing target is
replaced only with ``overwrite`` and only once the new folder is complete (the old one is renamed aside
first, then removed; a run killed between the two renames gets the old folder back on its next start).
A full disk while staging or publishing is a :class:`~fr_data.io.errors.WriteError` naming the path.

One run at a time per output: a run holds an exclusive ``flock`` on the lock file ``.<name>.lock`` beside
the target for as long as it writes (:func:`output_lock`; :func:`staged_folder` takes it), so the staging
name can stay stable (an interrupted shard run resumes from it) while a second run to the same ``--out``
is refused at once, naming the folder and the holding process, instead of deleting the first run's
staging folder. The kernel releases the lock when its process dies, however it dies, so a lock file left
by a killed run never blocks the next one. :func:`check_apart` refuses an output that is, contains or lies
inside one of the command's inputs, before any work.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from fr_data.io.errors import DataError, WriteError
from fr_data.io.faults import kill_point

__all__ = ["check_apart", "check_target", "lock_path", "output_lock", "prepare_staging", "publish",
           "recover_aside", "staged_folder", "staging_dir"]

#: Lock files this process holds (absolute path -> pid): a nested :func:`output_lock` of the same
#: target is a no-op in the holder, not a conflict with itself (a forked child has another pid).
_HELD: dict[str, int] = {}


def check_apart(out: str | os.PathLike, *inputs: str | os.PathLike | None) -> None:
    """Refuse an output path that is, contains or lies inside one of ``inputs`` (None entries skipped).

    Paths are compared resolved (symlinks followed, ``..`` removed), so ``--out RUN`` for an input
    ``RUN`` reached through a link is caught as well. Called by every command before any work: an
    ``--overwrite`` would otherwise delete the input the command is reading.

    Raises:
        DataError: naming both paths.
    """
    real_out = Path(os.path.realpath(out))
    for given in inputs:
        if given is None:
            continue
        real_in = Path(os.path.realpath(given))
        if real_out == real_in:
            relation = "is"
        elif real_out in real_in.parents:
            relation = "contains"
        elif real_in in real_out.parents:
            relation = "lies inside"
        else:
            continue
        raise DataError(out, "", f"the output {relation} the input {os.fspath(given)} ({real_in}); "
                                 "choose an output outside the inputs")


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` beside it."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def output_lock(target: str | os.PathLike, what: str = "output folder") -> Iterator[Path]:
    """Hold the exclusive lock of ``target`` for the block: one run at a time writes it.

    The lock is an ``flock`` on :func:`lock_path`, taken without waiting; the holder's pid is written
    into the file for the error message of a second run. The kernel drops the lock when the holding
    process dies (SIGKILL included), so a left-over lock file is simply taken by the next run. On a clean
    exit the holder removes the file; a run that opened the file just before that checks after locking
    that the path still names the file it locked, and retries otherwise. Nested use in the holding
    process is a no-op.

    Raises:
        DataError: naming ``target`` and the pid of the process holding it.
        WriteError: the lock file cannot be created (no permission, a full disk).
    """
    lock = lock_path(target)
    key = os.path.abspath(lock)
    if _HELD.get(key) == os.getpid():
        yield lock
        return
    fd = _acquire(lock, Path(target), what)
    _HELD[key] = os.getpid()
    try:
        kill_point("publish:locked")
        yield lock
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)  # still ours: only a holder removes the file
        os.close(fd)


def _acquire(lock: Path, target: Path, what: str) -> int:
    """Open and ``flock`` ``lock`` (the file the path names when locked); write this pid into it."""
    while True:
        with _writing(lock):
            if not lock.parent.is_dir():
                lock.parent.mkdir(parents=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            by = f"process {holder}" if holder.isdigit() else "another process"
            raise DataError(target, "", f"{what} is being written by {by} (lock {lock}); wait for it to end "
                                        "or choose another --out") from None
        except OSError as exc:
            os.close(fd)
            raise WriteError(lock, exc) from exc
        if _same_file(fd, lock):
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock
    with _writing(lock):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def check_target(target: str | os.PathLike, overwrite: bool, what: str = "output folder") -> None:
    """Refuse to replace an existing ``target`` unless ``overwrite`` (the ``--overwrite`` rule).

    First an overwrite that was killed between its two renames is undone (:func:`recover_aside`).

    Raises:
        DataError: naming ``target``, when it exists and ``overwrite`` is False.
    """
    recover_aside(target)
    if Path(target).exists() and not overwrite:
        raise DataError(target, "", f"{what} already exists; choose a new --out or pass --overwrite")


def recover_aside(target: str | os.PathLike) -> None:
    """Put back an old ``target`` that an interrupted overwrite moved aside (``.<name>.old-PID``) when no
    new one took its place; remove such leftovers when it did."""
    target = Path(target)
    leftovers = sorted(target.parent.glob(glob.escape(f".{target.name}.old-") + "*"))
    if leftovers and not target.exists():
        with _writing(target):
            os.replace(leftovers.pop(), target)
    for old in leftovers:
        shutil.rmtree(old, ignore_errors=True)


def staging_dir(target: str | os.PathLike) -> Path:
    """The folder a run writes into before it becomes ``target``: ``.<name>.partial`` beside it."""
    target = Path(target)
    return target.parent / f".{target.name}.partial"


def prepare_staging(staging: str | os.PathLike) -> Path:
    """Remove a stale staging folder (an interrupted run) and create it empty."""
    staging = Path(staging)
    with _writing(staging):
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
    kill_point("publish:staging")
    return staging


def publish(staging: str | os.PathLike, target: str | os.PathLike, overwrite: bool,
            what: str = "output folder") -> None:
    """Rename the finished ``staging`` folder to ``target``; an existing ``target`` (with ``overwrite``)
    is renamed aside first and removed once the new folder is in place."""
    staging, target = Path(staging), Path(target)
    if not target.exists():
        os.replace(staging, target)
        return
    check_target(target, overwrite, what)
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    with _writing(target):
        os.replace(target, old)
        kill_point("publish:aside")
        os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """An OSError (a full disk, no permission) becomes a WriteError naming ``path``."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, exc) from exc


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike, overwrite: bool, what: str = "output folder") -> Iterator[Path]:
    """Yield an empty staging folder that becomes ``target`` only if the block completes.

    The target's lock is held throughout (:func:`output_lock`: a concurrent run to the same target is
    refused); the target is checked before any work starts (:func:`check_target`); on an exception the
    staging folder is removed and the target is left as it was.
    """
    target = Path(target)
    with output_lock(target, what):
        check_target(target, overwrite, what)
        staging = prepare_staging(staging_dir(target))
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish(staging, target, overwrite, what)
