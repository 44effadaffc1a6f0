"""Shared helpers of the command tests: the tiny backbone as a ``--model`` SPEC, a module-scoped folder of
tiny shards to embed, a tiny RecordIO set, a hand-made run folder to query, the command lines of the
crash tests and the injected full disk."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.formats.recordio import write_insightface
from fr_data.io import atomic
from tests.fr_data.embed.helpers import make_shards
from tests.fr_data.ingest.helpers import tiny_image

#: ``--model`` SPEC of the tiny deterministic backbone (``package.module:factory``).
TINY = "tests.fr_data.embed.helpers:make_tiny"


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Ten tiny samples in three shards, with their manifest."""
    folder = tmp_path_factory.mktemp("shards")
    make_shards(folder, n=10, n_shards=3)
    return folder


def make_rec(folder: Path, classes: int = 4, per_class: int = 6, bad: dict[int, bytes] | None = None) -> list:
    """InsightFace-layout train.rec; image i (0-based) is record key i+1 with label i // per_class."""
    items = [(i // per_class, (bad or {}).get(i + 1, tiny_image(i))) for i in range(classes * per_class)]
    write_insightface(folder, items)
    return items


@pytest.fixture()
def run(tmp_path):
    folder = tmp_path / "RUN"
    folder.mkdir()
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(5)], "label": [0, 0, 1, 1, 1],
                             "split": ["easy", "hard", "hard", "hard", "easy"]}), folder / "samples.parquet")
    pq.write_table(pa.table({"label": [0, 1], "n": [2, 3], "merge_candidate": [False, True]}),
                   folder / "classes.parquet")
    return folder


def embed_argv(shards: Path, out: Path) -> list[str]:
    return ["--shards", str(shards), "--model", TINY, "--out", str(out), "--device", "cpu", "--workers", "0",
            "--batch-size", "4", "--no-progress"]


def mine_argv(emb: Path, out: Path) -> list[str]:
    return ["--embeddings", str(emb), "--out", str(out), "--quiet"]


def full_disk_at(monkeypatch, call: int) -> list[Path]:
    """Make the ``call``-th atomic write (counted from 1) fail with ENOSPC; collect every target."""
    seen: list[Path] = []
    real = atomic._fsync_file

    def fsync(path: Path) -> None:
        seen.append(path)
        if len(seen) == call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path)

    monkeypatch.setattr(atomic, "_fsync_file", fsync)
    return seen


def target_of(tmp: Path) -> Path:
    """The file an atomic write's temporary ``.NAME.tmp-XXXX`` becomes."""
    return tmp.parent / tmp.name[1:].rsplit(".tmp-", 1)[0]


def assert_nothing_left(parent: Path, name: str, err: str, path: Path) -> None:
    line = err.strip()
    assert line.count("\n") == 0 and str(path) in line and "No space left on device" in line, err
    assert [p.name for p in parent.iterdir() if p.name.startswith((name, f".{name}"))] == []
    assert [p for p in parent.rglob("*.tmp-*")] == []


def count_writes(monkeypatch, run) -> list[Path]:
    seen = full_disk_at(monkeypatch, call=0)
    assert run() == 0
    return [target_of(p) for p in seen]
