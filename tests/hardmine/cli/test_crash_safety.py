"""Kill and disk-full safety of ``hardmine embed`` and ``hardmine mine`` (issue 11, point 6).

Killed: each command runs in forked children (``tests/hardmine/cli/killrun.py``, one process, one thread
per child) that SIGKILL themselves at the named points of ``fr_data.io.faults`` in turn, each kill a rerun
of the one before; after every kill no folder with the final name exists; the last, uninterrupted rerun
equals an uninterrupted run made beside it. Then an ``--overwrite`` killed between its two renames gets
the old folder back on the next run, which completes the overwrite. The first point, ``publish:locked``,
leaves the output's lock file behind: the rerun takes it over (the kernel dropped the dead run's lock). Compared: ``embeddings.npy``,
``index.parquet`` and ``config.yaml`` byte for byte; ``run.json`` without its clock fields (``created``,
``seconds``, ``images_per_second``, ``timings``); each run-folder Parquet table by the Arrow IPC bytes of
its schema and values, and its key-value metadata (the run report) without ``created``.

Disk full: an ``OSError(ENOSPC)`` injected at each atomic file write in turn (and while reserving the
embeddings memmap, and inside a Parquet write): exit 2, one error line naming the file, no folder with the
final name, no staging folder and no temporary file left.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.folders import run_folder as rf
from fr_data.io.faults import KILL_POINTS
from hardmine.cli import embed, mine
from tests.fr_data.mining.planted import PlantedSpec, make_planted, write_emb
from tests.hardmine.cli.helpers import (  # noqa: F401 (shards: the shard-folder fixture)
    TINY,
    assert_nothing_left,
    count_writes,
    embed_argv,
    full_disk_at,
    mine_argv,
    shards,
    target_of,
)
from tests.repo import ROOT

CLOCK_FIELDS = {"created", "seconds", "images_per_second", "timings"}
EMBED_POINTS = ["publish:locked", "publish:staging", "embed:batch", "atomic:replace", "embed:index", "embed:run_info"]
MINE_POINTS = ["publish:locked", "publish:staging", "mine:centres", "mine:search", "atomic:replace", "mine:tables", "mine:run_info"]


@pytest.fixture(scope="module")
def emb(tmp_path_factory) -> Path:
    x, truth = make_planted(PlantedSpec(identities=8, per_identity=(4, 6), seed=1))
    return write_emb(tmp_path_factory.mktemp("emb") / "EMB", x, truth)


def killed_runs(command: str, argv, out: Path, reference: Path, points: list[str], tmp_path: Path) -> list[dict]:
    """Reference run, one run killed at each point, a clean rerun, an overwrite killed aside, a clean one."""
    runs = ([{"kill_at": None, "argv": argv(reference)}] + [{"kill_at": p, "argv": argv(out)} for p in points]
            + [{"kill_at": None, "argv": argv(out)}, {"kill_at": "publish:aside", "argv": argv(out) + ["--overwrite"]},
               {"kill_at": None, "argv": argv(out) + ["--overwrite"]}])
    plan, report = tmp_path / "plan.json", tmp_path / "report.json"
    plan.write_text(json.dumps({"command": command, "watch": str(out.parent), "runs": runs,
                                "preload": ["torch", "faiss", "duckdb"]}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.hardmine.cli.killrun", str(plan), str(report)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(report.read_text())[1:]


def check_kills(report: list[dict], points: list[str], name: str) -> None:
    for run in report[:len(points)]:
        assert run["signal"] == 9, run  # the point was reached
        assert name not in run["listing"], run  # nothing under the final name
    final, aside, again = report[len(points):]
    assert final["exit"] == 0 and name in final["listing"]
    assert aside["signal"] == 9 and name not in aside["listing"]
    assert any(entry.startswith(f".{name}.old-") for entry in aside["listing"])  # the old one, hidden
    assert again["exit"] == 0 and again["listing"] == [name], again  # restored, replaced, tidied


def without_clock(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in CLOCK_FIELDS}


def test_points_are_all_exercised():
    assert set(EMBED_POINTS + MINE_POINTS + ["publish:aside"]) == set(KILL_POINTS)


def test_embed_killed_at_each_point_then_rerun_equals_an_uninterrupted_run(shards, tmp_path):
    out, reference = tmp_path / "work" / "EMB", tmp_path / "ref" / "EMB"
    out.parent.mkdir()
    report = killed_runs("embed", lambda o: embed_argv(shards, o), out, reference, EMBED_POINTS, tmp_path)
    check_kills(report, EMBED_POINTS, "EMB")
    for name in ("embeddings.npy", "index.parquet"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    got, want = (json.loads((f / "run.json").read_text()) for f in (out, reference))
    assert without_clock(got) == without_clock(want)


def test_mine_killed_at_each_point_then_rerun_equals_an_uninterrupted_run(emb, tmp_path):
    out, reference = tmp_path / "work" / "RUN", tmp_path / "ref" / "RUN"
    out.parent.mkdir()
    report = killed_runs("mine", lambda o: mine_argv(emb, o), out, reference, MINE_POINTS, tmp_path)
    check_kills(report, MINE_POINTS, "RUN")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert (out / rf.CONFIG_FILE).read_bytes() == (reference / rf.CONFIG_FILE).read_bytes()
    got, want = (json.loads((f / rf.RUN_FILE).read_text()) for f in (out, reference))
    assert without_clock(got) == without_clock(want)
    for file, _ in rf.TABLES.values():
        a, b = pq.read_table(out / file), pq.read_table(reference / file)
        assert arrow_bytes(a) == arrow_bytes(b), file  # schema and every value, NaN bits included
        meta = [without_clock(json.loads(t.schema.metadata[rf.METADATA_KEY.encode()])) for t in (a, b)]
        assert meta[0] == meta[1], file


def arrow_bytes(table: pa.Table) -> bytes:
    """The Arrow IPC stream of ``table`` without its key-value metadata."""
    sink = pa.BufferOutputStream()
    table = table.replace_schema_metadata(None)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# -- disk full ------------------------------------------------------------------------------------
def test_embed_disk_full_at_each_write(shards, tmp_path, monkeypatch, capsys):
    out = tmp_path / "EMB"
    written = count_writes(monkeypatch, lambda: embed.main(embed_argv(shards, tmp_path / "clean" / "EMB")))
    assert [p.name for p in written] == ["embeddings.npy", "index.parquet", "run.json"]
    capsys.readouterr()
    for call, target in enumerate(written, start=1):
        full_disk_at(monkeypatch, call)
        assert embed.main(embed_argv(shards, out)) == 2
        staged = out.parent / f".{out.name}.partial" / target.name
        assert_nothing_left(tmp_path, "EMB", capsys.readouterr().err, staged)


def test_embed_disk_full_while_reserving_the_memmap(shards, tmp_path, monkeypatch, capsys):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    assert embed.main(embed_argv(shards, tmp_path / "EMB")) == 2
    assert_nothing_left(tmp_path, "EMB", capsys.readouterr().err, tmp_path / ".EMB.partial" / "embeddings.npy")


def test_mine_disk_full_at_each_write(emb, tmp_path, monkeypatch, capsys):
    out = tmp_path / "RUN"
    written = count_writes(monkeypatch, lambda: mine.main(mine_argv(emb, tmp_path / "clean" / "RUN")))
    assert sorted(p.name for p in written) == sorted([f for f, _ in rf.TABLES.values()]  # + the rank's rows
                                                     + [rf.CONFIG_FILE, rf.RUN_FILE, rf.CALIBRATION_FIGURE_FILE,
                                                        rf.part_file(".", 0).name])
    capsys.readouterr()
    for call, target in enumerate(written, start=1):
        full_disk_at(monkeypatch, call)
        assert mine.main(mine_argv(emb, out)) == 2
        assert_nothing_left(tmp_path, "RUN", capsys.readouterr().err, out.parent / ".RUN.partial" / target.name)


def test_mine_disk_full_inside_a_parquet_write(emb, tmp_path, monkeypatch, capsys):
    real = pq.write_table

    def half_then_full(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq, "write_table", half_then_full)
    assert mine.main(mine_argv(emb, tmp_path / "RUN")) == 2
    monkeypatch.setattr(pq, "write_table", real)
    # the first Parquet file a run writes is its rows of samples.parquet
    assert_nothing_left(tmp_path, "RUN", capsys.readouterr().err, rf.part_file(tmp_path / ".RUN.partial", 0))
