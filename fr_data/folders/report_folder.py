"""The review page folder written by ``hardmine report`` (and ``hardmine mine --report``).

Layout::

    DIR/index.html    the page: every section, all CSS and JS inline, opens from file:// with no network
    DIR/img/          thumbnails, one JPEG per shown sample, named by a hash of the key (thumb_name)
    DIR/figures/      charts (PNG)
    DIR/report.json   what the page was built from: run folder, sha256 of its run.json, shards, per-section
                      counts (flagged and shown), keys missing from the shards, build time

The folder is built in a staging folder and renamed to ``DIR`` only when every file is written
(``report.json`` last), so a reader never sees a half-built page; an existing ``DIR`` is replaced only
with ``overwrite`` and only once the new one is complete (``fr_data.io.publish``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fr_data.io.atomic import atomic_write_text
from fr_data.io.jsonfile import read_json_object
from fr_data.io.publish import staged_folder

INDEX_FILE = "index.html"
IMG_DIR = "img"
FIGURES_DIR = "figures"
MANIFEST_FILE = "report.json"


def thumb_name(key: str) -> str:
    """Path of a sample's thumbnail relative to the folder (keys may hold any character)."""
    return f"{IMG_DIR}/{hashlib.sha1(key.encode('utf-8')).hexdigest()[:20]}.jpg"


def figure_name(name: str) -> str:
    """Path of a chart relative to the folder."""
    return f"{FIGURES_DIR}/{name}.png"


@contextlib.contextmanager
def publish(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder (with ``img/`` and ``figures/``) that becomes ``target`` when the
    block succeeds.

    Raises:
        DataError: ``target`` exists and ``overwrite`` is off.
    """
    with staged_folder(target, overwrite, "report folder") as tmp:
        (tmp / IMG_DIR).mkdir()
        (tmp / FIGURES_DIR).mkdir()
        yield tmp


def write_manifest(folder: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Write ``report.json`` (do it last: it marks the folder complete)."""
    atomic_write_text(Path(folder) / MANIFEST_FILE, json.dumps(manifest, indent=2, default=str) + "\n")


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """``report.json`` of a finished report folder (``{}`` when there is none)."""
    return read_json_object(Path(folder) / MANIFEST_FILE)
