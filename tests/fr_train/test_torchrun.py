"""A real 2-process gloo run: ``python -m torch.distributed.run --nproc_per_node 2 -m fr_train`` on
tiny shards, plus the single-process CLI (``python -m fr_train``) and its config errors."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

from fr_train.__main__ import main
from fr_train.checkpoints.resume import load_tensors, read_state
from fr_train.logs import read_metrics
from tests.fr_train.helpers import CONFIG, tiny  # noqa: F401  (fixture)
from tests.repo import ROOT

REPO = ROOT


def write_config(tiny, folder: Path, extra: str = "") -> Path:
    path = folder / "exp.yaml"
    path.write_text(f"""base: {CONFIG}
data: {{shards: {tiny.shards}, run: {tiny.run}, batch_size: 4, num_workers: 0}}
model: {{embedding_size: 16}}
objective: {{head: {{name: arcface, s: 16.0, m: 0.2}}}}
optim: {{lr: 0.05}}
schedule: {{warmup_steps: 2}}
train: {{max_steps: 16, log_every: 1, ckpt_every: 8, progress: false, cpu_threads: 1}}
{extra}""")
    return path


def test_two_process_gloo_run(tiny, tmp_path):
    # CurricularFace through Partial FC (centres sharded over the 2 ranks), evaluation on rank 0
    config = write_config(tiny, tmp_path, f"""eval: {{pairs_run: {tiny.run}}}
""")
    config.write_text(config.read_text().replace("name: arcface", "name: curricularface"))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fr_train", "--config", str(config), "--output", str(out),
           "--set", "objective.partial_fc={enabled: true, sample_rate: 0.5}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "terminate called" not in proc.stderr  # each rank released its group before exiting
    done = dict(re.findall(r"rank (\d)/2: done at step (\d+)", proc.stdout))
    assert done == {"0": "16", "1": "16"}  # both ranks ran the same number of steps
    final = out / "checkpoints" / "step-00000016"
    state = read_state(final)
    assert (state.step, state.world_size, state.epoch) == (16, 2, 4)  # 36 samples / (2 x 4) -> 4 per epoch
    per_rank = {p.name for p in final.glob("*.rank*.pt")}
    assert per_rank == {f"{n}.rank{r}.pt" for n in ("rng", "optimizer", "classifier") for r in (0, 1)}
    shards = [load_tensors(final / f"classifier.rank{r}.pt")["weight"].shape for r in (0, 1)]
    assert shards == [(3, 16), (3, 16)]  # 6 classes split over 2 ranks
    assert (final / "config.yaml").is_file() and (out / "config.yaml").is_file()
    assert "fc.weight" in load_tensors(final / "model.pt")
    records = read_metrics(out / "metrics.jsonl")
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 16 and all(math.isfinite(v) for v in losses)
    assert records[-1]["step"] == 16 and 0.0 <= records[-1]["pairs/accuracy/hard"] <= 1.0
    assert sum(losses[-4:]) < sum(losses[:4])  # it learns


def test_single_process_cli_with_overrides(tiny, tmp_path):
    config = write_config(tiny, tmp_path)
    out = tmp_path / "one"
    assert main(["--config", str(config), "--output", str(out), "--set", "train.max_steps=3",
                 "--set", "objective.head.name=cosface", "--stop-after", "2"]) == 0
    assert read_state(out / "checkpoints" / "step-00000002").step == 2
    assert main(["--config", str(config), "--output", str(out), "--set", "train.max_steps=3",
                 "--set", "objective.head.name=cosface", "--resume"]) == 0
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3]


def test_cli_reports_config_errors(tiny, tmp_path, capsys):
    config = write_config(tiny, tmp_path)
    assert main(["--config", str(config), "--set", "train.epocs=2"]) == 2
    assert "unknown key(s) ['epocs']" in capsys.readouterr().err
