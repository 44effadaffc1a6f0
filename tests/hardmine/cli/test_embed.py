"""Tests of tools/embed.py: the CLI end to end, SPEC kinds, and a real 2-process torchrun (gloo) run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fr_data.folders.embeddings_folder import EMBEDDINGS_FILE, RUN_FILE, read_index
from fr_train.models import get_model
from hardmine.cli import embed as embed
from tests.fr_data.embed.helpers import EMB_DIM, make_tiny
from tests.hardmine.cli.helpers import TINY, shards  # noqa: F401  (shards: fixture)
from tests.repo import ROOT

REPO = ROOT
@pytest.fixture(scope="module")
def single(shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "EMB"
    argv = ["--shards", str(shards), "--model", TINY, "--out", str(out), "--device", "cpu", "--workers", "0",
            "--batch-size", "4", "--no-progress"]
    assert embed.main(argv) == 0
    return out


def test_cli_writes_the_embeddings_folder(single):
    info = json.loads((single / RUN_FILE).read_text())
    assert info["spec"]["model"] == TINY and info["count"] == 10 and info["dims"] == EMB_DIM
    assert info["device"] == "cpu" and info["world_size"] == 1
    assert np.load(single / EMBEDDINGS_FILE).shape == (10, EMB_DIM)
    assert read_index(single).column("key").to_pylist() == [f"{i:06d}" for i in range(10)]


def test_existing_output_is_refused_with_a_message(shards, single, capsys):
    argv = ["--shards", str(shards), "--model", TINY, "--out", str(single), "--device", "cpu",
            "--no-progress"]
    assert embed.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_torchscript_spec_gives_the_same_embeddings(shards, single, tmp_path):
    torch.jit.trace(make_tiny(), torch.zeros(1, 3, 112, 112)).save(str(tmp_path / "tiny.ts"))
    out = tmp_path / "EMB"
    argv = ["--shards", str(shards), "--model", str(tmp_path / "tiny.ts"), "--out", str(out),
            "--device", "cpu", "--workers", "0", "--batch-size", "4", "--no-progress"]
    assert embed.main(argv) == 0
    np.testing.assert_allclose(np.load(out / EMBEDDINGS_FILE), np.load(single / EMBEDDINGS_FILE), atol=1e-3)


def test_fr_train_name_with_checkpoint(shards, tmp_path):
    trained = get_model("tiny", embedding_size=8).eval()
    torch.nn.init.normal_(trained.fc.weight, generator=torch.Generator().manual_seed(3))
    torch.save(trained.state_dict(), tmp_path / "backbone.pth")
    out = tmp_path / "EMB"
    argv = ["--shards", str(shards), "--model", "tiny", "--embedding-size", "8", "--checkpoint",
            str(tmp_path / "backbone.pth"), "--out", str(out), "--device", "cpu", "--workers", "0",
            "--no-progress"]
    assert embed.main(argv) == 0
    emb = np.load(out / EMBEDDINGS_FILE).astype(np.float32)
    from fr_data.loading.decode import decode_face  # the first stored sample, embedded directly
    from fr_data.loading.loader import iter_samples  # the first stored sample, embedded directly
    sample = min(iter_samples(sorted(shards.glob("*.tar"))), key=lambda s: s["key"])
    x = decode_face(sample["jpg"])[None]
    with torch.no_grad():
        want = torch.nn.functional.normalize(trained(x) + trained(x.flip(-1)))[0].numpy()
    np.testing.assert_allclose(emb[0], want, atol=2e-3)


def test_dual_bn_checkpoint_with_the_flag(shards, tmp_path):
    trained = get_model("tiny", embedding_size=8, dual_bn=True).eval()
    torch.nn.init.normal_(trained.net.fc.weight, generator=torch.Generator().manual_seed(3))
    torch.save(trained.state_dict(), tmp_path / "backbone.pth")
    base = ["--shards", str(shards), "--model", "tiny", "--embedding-size", "8", "--checkpoint",
            str(tmp_path / "backbone.pth"), "--device", "cpu", "--workers", "0", "--no-progress"]
    assert embed.main([*base, "--out", str(tmp_path / "plain")]) == 2  # a plain tiny does not take the weights
    assert embed.main([*base, "--dual-bn", "--out", str(tmp_path / "EMB")]) == 0
    assert json.loads((tmp_path / "EMB" / RUN_FILE).read_text())["spec"]["dual_bn"] is True
    from fr_data.loading.decode import decode_face
    from fr_data.loading.loader import iter_samples
    sample = min(iter_samples(sorted(shards.glob("*.tar"))), key=lambda s: s["key"])
    x = decode_face(sample["jpg"])[None]
    with torch.no_grad():  # inference: the predicted fusion weight
        want = torch.nn.functional.normalize(trained(x) + trained(x.flip(-1)))[0].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "EMB" / EMBEDDINGS_FILE)[0].astype(np.float32), want, atol=2e-3)


def run_in_own_group(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``cmd`` in a new process group; on timeout kill the whole group (torchrun and its ranks)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"torchrun did not finish within {timeout} s")
    return proc.returncode, stderr


def test_torchrun_two_ranks_equal_single_process(shards, single, tmp_path):
    out = tmp_path / "EMB"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "tools" / "embed.py"), "--shards", str(shards), "--model", TINY, "--out", str(out),
           "--device", "cpu", "--workers", "0", "--batch-size", "3", "--no-progress"]
    returncode, stderr = run_in_own_group(cmd, env, timeout=90)
    assert returncode == 0, stderr[-3000:]
    info = json.loads((out / RUN_FILE).read_text())
    assert info["world_size"] == 2 and info["count"] == 10
    np.testing.assert_allclose(np.load(out / EMBEDDINGS_FILE), np.load(single / EMBEDDINGS_FILE), atol=1e-3)
    got, want = read_index(out), read_index(single)
    assert got.select(["key", "label"]).equals(want.select(["key", "label"]))
    np.testing.assert_allclose(got.column("norm").to_numpy(), want.column("norm").to_numpy(), rtol=1e-5)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in single.iterdir())  # parts removed
