"""Publishing an output folder atomically: it appears under its final name only when complete.

Every tool that writes a folder (embeddings, mining runs, review pages, experiments) writes into a
staging folder ``.<name>.partial`` beside the target and renames it to the target at the end. An
interrupted run leaves only the hidden staging folder, which the next run clears; an existing target is
replaced only with ``overwrite`` and only once the new folder is complete (the old one is renamed aside
first, then removed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from fr_data.io.errors import DataError

__all__ = ["check_target", "prepare_staging", "publish", "staged_folder", "staging_dir"]


def check_target(target: str | os.PathLike, overwrite: bool, what: str = "output folder") -> None:
    """Refuse to replace an existing ``target`` unless ``overwrite`` (the ``--overwrite`` rule).

    Raises:
        DataError: naming ``target``, when it exists and ``overwrite`` is False.
    """
    if Path(target).exists() and not overwrite:
        raise DataError(target, "", f"{what} already exists; choose a new --out or pass --overwrite")


def staging_dir(target: str | os.PathLike) -> Path:
    """The folder a run writes into before it becomes ``target``: ``.<name>.partial`` beside it."""
    target = Path(target)
    return target.parent / f".{target.name}.partial"


def prepare_staging(staging: str | os.PathLike) -> Path:
    """Remove a stale staging folder (an interrupted run) and create it empty."""
    staging = Path(staging)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
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
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old)


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike, overwrite: bool, what: str = "output folder") -> Iterator[Path]:
    """Yield an empty staging folder that becomes ``target`` only if the block completes.

    The target is checked before any work starts (:func:`check_target`); on an exception the staging
    folder is removed and the target is left as it was.
    """
    target = Path(target)
    check_target(target, overwrite, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = prepare_staging(staging_dir(target))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(staging, target, overwrite, what)
