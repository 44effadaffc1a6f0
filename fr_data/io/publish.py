"""Publishing an output folder atomically: it appears under its final name only when complete.

Every tool that writes a folder (embeddings, mining runs, review pages, experiments) writes into a
staging folder ``.<name>.partial`` beside the target and renames it to the target at the end. An
interrupted run leaves only the hidden staging folder, which the next run clears; an existing target is
replaced only with ``overwrite`` and only once the new folder is complete (the old one is renamed aside
first, then removed; a run killed between the two renames gets the old folder back on its next start).
A full disk while staging or publishing is a :class:`~fr_data.io.errors.WriteError` naming the path.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from fr_data.io.errors import DataError, WriteError
from fr_data.io.faults import kill_point

__all__ = ["check_target", "prepare_staging", "publish", "recover_aside", "staged_folder", "staging_dir"]


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

    The target is checked before any work starts (:func:`check_target`); on an exception the staging
    folder is removed and the target is left as it was.
    """
    target = Path(target)
    check_target(target, overwrite, what)
    staging = prepare_staging(staging_dir(target))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(staging, target, overwrite, what)
