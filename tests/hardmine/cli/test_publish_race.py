"""Two runs of one command to one ``--out`` at once never publish a mixed folder (issue 19, point 3).

Each round starts a first ``hardmine`` process that is held at a named point (``HARDMINE_HOLD_AT`` of
``fr_data.io.faults``: it waits there until the test releases it), runs a second process to the same
``--out`` to its end while the first one waits, then releases the first. The order of events is fixed by
the hold, not by timing. The two runs differ in a setting that every file records (mining: the config's
``neighbours.k``, in ``config.yaml``, ``run.json`` and each table's metadata; embedding: ``batch_size`` in
``run.json``), so a folder mixing the two runs is caught file by file. Before the fix the second run
deleted the first one's staging folder ``.RUN.partial``, published its own folder and exited 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from fr_data.folders import run_folder as rf
from fr_data.io.faults import HOLD_ENV
from tests.fr_data.mining.planted import PlantedSpec, make_planted, write_emb
from tests.hardmine.cli.helpers import embed_argv, mine_argv
from tests.hardmine.cli.helpers import shards  # noqa: F401 (the shard-folder fixture)
from tests.repo import ROOT

#: The longest a process may take to reach its hold point (a guard against a hang, not a timing).
HANG_GUARD_S = 300

pytestmark = pytest.mark.slow  # about a dozen interpreter starts


@pytest.fixture(scope="module")
def emb(tmp_path_factory) -> Path:
    x, truth = make_planted(PlantedSpec(identities=8, per_identity=(4, 6), seed=1))
    return write_emb(tmp_path_factory.mktemp("emb") / "EMB", x, truth)


def start(command: str, argv: list[str], hold: tuple[str, Path] | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop(HOLD_ENV, None)
    if hold is not None:
        env[HOLD_ENV] = f"{hold[0]}={hold[1]}"
    return subprocess.Popen([sys.executable, "-m", "hardmine", command, *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def race(command: str, first: list[str], second: list[str], point: str, hold: Path) -> tuple[int, str, int, str]:
    """Run ``second`` to its end while ``first`` waits at ``point``; return both exit codes and stderrs."""
    hold.mkdir()
    held = start(command, first, (point, hold))
    deadline = time.monotonic() + HANG_GUARD_S
    while not (hold / "held").exists():
        if held.poll() is not None or time.monotonic() > deadline:
            held.kill()
            pytest.fail(f"the first run never reached {point}: {held.communicate()[1][-2000:]}")
        time.sleep(0.05)
    assert (hold / "held").read_text() == str(held.pid)
    other = start(command, second)
    _, other_err = other.communicate(timeout=HANG_GUARD_S)
    (hold / "release").touch()
    _, held_err = held.communicate(timeout=HANG_GUARD_S)
    return held.returncode, held_err, other.returncode, other_err


def assert_refused(code: int, err: str, out: Path, holder_pid: str) -> None:
    """The loser's exit 2 with one line naming the folder and the process holding it."""
    line = err.strip()
    assert code == 2 and "\n" not in line, err
    assert str(out) in line and f"process {holder_pid}" in line and "being written" in line, line


def mining_config(folder: Path, k: int) -> Path:
    path = folder / f"k{k}.yaml"
    path.write_text(f"neighbours: {{k: {k}}}\n")
    return path


def k_of_every_file(run: Path) -> dict[str, int]:
    """The config ``neighbours.k`` each file of a run folder records."""
    found = {rf.CONFIG_FILE: yaml.safe_load((run / rf.CONFIG_FILE).read_text())["neighbours"]["k"],
             rf.RUN_FILE: json.loads((run / rf.RUN_FILE).read_text())["config"]["neighbours"]["k"]}
    for file, _ in rf.TABLES.values():
        if (run / file).exists():
            meta = pq.read_schema(run / file).metadata[rf.METADATA_KEY.encode()]
            found[file] = json.loads(meta)["config"]["neighbours"]["k"]
    return found


def test_two_mine_overwrites_to_one_out_never_publish_a_mixed_folder(emb, tmp_path):
    out = tmp_path / "runs" / "RUN"
    configs = {k: mining_config(tmp_path, k) for k in (5, 7)}
    argv = {k: mine_argv(emb, out) + ["--config", str(path), "--overwrite"] for k, path in configs.items()}
    expected_files = sorted([f for f, _ in rf.TABLES.values()] + [rf.CONFIG_FILE, rf.RUN_FILE])
    # the first round creates RUN, the later ones replace it (the last one held between its two renames)
    rounds = [("mine:centres", 5, 7), ("mine:run_info", 7, 5), ("publish:aside", 5, 7)]
    for n, (point, k_held, k_other) in enumerate(rounds):
        held_code, held_err, code, err = race("mine", argv[k_held], argv[k_other], point, tmp_path / f"hold{n}")
        assert held_code == 0, (point, held_err)
        assert_refused(code, err, out, (tmp_path / f"hold{n}" / "held").read_text())
        files = sorted(p.name for p in out.iterdir())
        assert set(expected_files) <= set(files), (point, files)  # complete
        assert set(k_of_every_file(out).values()) == {k_held}, (point, k_of_every_file(out))  # one run's
        assert sorted(p.name for p in out.parent.iterdir()) == ["RUN"], point  # no staging, lock or aside left


def test_two_embed_overwrites_to_one_out_never_publish_a_mixed_folder(shards, tmp_path):  # noqa: F811
    out = tmp_path / "embs" / "EMB"
    argv = {b: embed_argv(shards, out)[:-2] + [str(b), "--no-progress", "--overwrite"] for b in (2, 4)}
    assert embed_argv(shards, out)[-3:] == ["--batch-size", "4", "--no-progress"]
    for n, (point, b_held, b_other) in enumerate([("embed:batch", 2, 4)]):
        held_code, held_err, code, err = race("embed", argv[b_held], argv[b_other], point, tmp_path / f"hold{n}")
        assert held_code == 0, (point, held_err)
        assert_refused(code, err, out, (tmp_path / f"hold{n}" / "held").read_text())
        assert sorted(p.name for p in out.iterdir()) == ["embeddings.npy", "index.parquet", "run.json"]
        assert json.loads((out / "run.json").read_text())["batch_size"] == b_held, point
        assert sorted(p.name for p in out.parent.iterdir()) == ["EMB"], point
