"""Atomic file writes: write to a temporary sibling, fsync, then rename over the target.

A reader never sees a half-written file under the final name; a crash leaves at most a ``*.tmp-*``
file that the next run removes or overwrites.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fr_data.io.errors import WriteError
from fr_data.io.faults import kill_point

#: errno values that mean the disk refused a write (raised inside an atomic block they name the target).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on clean exit rename it onto ``target``.

    On an exception the temporary file is removed and ``target`` is left untouched. A full disk (or
    another :data:`WRITE_ERRNOS` error) inside the block, and any OSError of the temporary file's own
    creation, sync and rename, becomes a :class:`~fr_data.io.errors.WriteError` naming ``target``.
    """
    target = Path(target)
    with _naming(target, always=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _naming(target, always=False):
            yield tmp_path
        with _naming(target, always=True):
            _fsync_file(tmp_path)
            os.chmod(tmp_path, _default_mode())  # mkstemp makes 0600; give the usual umask-based mode
            kill_point("atomic:replace")
            os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def _naming(target: Path, always: bool) -> Iterator[None]:
    """Turn an OSError into a WriteError naming ``target`` (all of them, or only WRITE_ERRNOS)."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        if always or exc.errno in WRITE_ERRNOS:
            raise WriteError(target, exc) from exc
        raise


def naming_write_errors(target: str | os.PathLike) -> contextlib.AbstractContextManager[None]:
    """A full disk (or another :data:`WRITE_ERRNOS` error) inside the block becomes a WriteError naming
    ``target``: for files written inside a staging folder, which need no atomic rename of their own."""
    return _naming(Path(target), always=False)


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file for writing; it replaces ``target`` only when the block succeeds."""
    with atomic_path(target) as tmp, open(tmp, mode) as f:
        yield f


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_open(target, "wb") as f:
        f.write(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def reserve(path: str | os.PathLike) -> None:
    """Allocate the disk blocks of ``path`` up to its size (a sparse memmap file), so a full disk is an
    OSError now rather than a SIGBUS when a page of the map is first written."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "rb+") as f:
        size = os.fstat(f.fileno()).st_size
        if size:
            try:
                os.posix_fallocate(f.fileno(), 0, size)
            except OSError as exc:
                if exc.errno in WRITE_ERRNOS:
                    raise
                # EOPNOTSUPP & co: the file system cannot preallocate; the map is written as before


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by an interrupted atomic write in ``folder``; return what went."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]
    for p in stale:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return stale


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
