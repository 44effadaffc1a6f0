"""Tests of fr_train.checkpoints.resume and exact resumption: RNG capture, weights-only files, checkpoint
folders, and a run stopped at step N and resumed to 2N reproducing the uninterrupted run's losses bit for
bit."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
import torch

from fr_data.io.errors import DataError
from fr_train.checkpoints.resume import (
    CheckpointStore,
    TrainState,
    capture_rng,
    load_tensors,
    read_state,
    restore_rng,
    save_tensors,
)
from fr_train.logs import read_metrics
from fr_train.trainer import run
from tests.fr_train.helpers import tiny, tiny_config  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _draws(gen: torch.Generator) -> tuple:
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(),
            torch.rand(3).tolist(), torch.rand(2, generator=gen).tolist())


def test_rng_capture_restores_every_stream():
    gen = torch.Generator().manual_seed(5)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    np.random.randn()
    state = capture_rng({"extra": gen})
    first = _draws(gen)
    restore_rng(state, {"extra": gen})
    assert _draws(gen) == first
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_rng_state_survives_a_weights_only_file(tmp_path):
    state = capture_rng()
    save_tensors(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng(load_tensors(tmp_path / "rng.pt"))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


def test_load_tensors_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": _Evil()}, path)
    with pytest.raises(DataError, match="evil.pt"):
        load_tensors(path)
    (tmp_path / "junk.pt").write_bytes(pickle.dumps([1, 2], protocol=2) + b"garbage")
    with pytest.raises(DataError, match="junk.pt"):
        load_tensors(tmp_path / "junk.pt")


def test_store_ignores_partial_folders_and_prunes(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt")
    for step in (3, 6, 9):
        store.save(TrainState(step=step), lambda f: (f / "model.pt").write_bytes(b"m"), lambda f: None)
    (tmp_path / "ckpt" / "step-00000012.partial").mkdir()  # a crash mid-write
    assert [p.name for p in store.checkpoints()] == ["step-00000003", "step-00000006", "step-00000009"]
    store.prune(2)
    assert [p.name for p in store.checkpoints()] == ["step-00000006", "step-00000009"]
    assert store.latest().name == "step-00000009" and read_state(store.latest()).step == 9
    assert json.loads((tmp_path / "ckpt" / "latest.json").read_text())["step"] == 9


def test_read_state_names_a_bad_sidecar(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(DataError, match="state.json"):
        read_state(tmp_path)


def _losses(path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(path) if "loss" in r]


def test_resume_reproduces_the_uninterrupted_losses_exactly(tiny, tmp_path):
    # CurricularFace (t buffer), Partial FC with sampling (its generator), flip + resolution-loss
    # augmentation, SGD momentum, warmup + polynomial decay; 12 steps cross the 9-step epoch boundary.
    sections = dict(objective={"head": {"name": "curricularface", "s": 16.0, "m": 0.3},
                               "partial_fc": {"enabled": True, "sample_rate": 0.5}},
                    data={"augment": {"flip_p": 0.5, "lowres_p": 0.5}},
                    train={"max_steps": 12, "ckpt_every": 4})
    full = run(tiny_config(tiny, tmp_path / "full", **sections))
    parted = tmp_path / "parted"
    first = run(tiny_config(tiny, parted, **sections), stop_after=6)
    assert first.state.step == 6 and first.checkpoint.name == "step-00000006"
    random.seed(99), np.random.seed(99), torch.manual_seed(99)  # resuming must not depend on this
    second = run(tiny_config(tiny, parted, **sections), resume=True)
    assert second.state.step == 12 and second.state.epoch == 1 and second.state.epoch_step == 3
    expected = [(r["step"], r["loss"]) for r in full.records if "loss" in r]
    assert [(r["step"], r["loss"]) for r in second.records if "loss" in r] == expected[6:]
    assert _losses(parted / "metrics.jsonl") == _losses(tmp_path / "full" / "metrics.jsonl") == expected
    a = load_tensors(full.checkpoint / "model.pt")
    b = load_tensors(second.checkpoint / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_low_resolution_distillation_is_exact(tiny, tmp_path):
    # the low-resolution copy's generator is checkpointed with the run (rng.rank0.pt: "lowres")
    teacher = run(tiny_config(tiny, tmp_path / "teacher", train={"max_steps": 3})).checkpoint
    kd_lowres = {"classifier": str(teacher / "objective.pt"), "s": 16.0}
    sections = dict(objective={"terms": {"kd_lowres": kd_lowres}},
                    train={"max_steps": 6, "ckpt_every": 3})
    full = run(tiny_config(tiny, tmp_path / "full", **sections))
    run(tiny_config(tiny, tmp_path / "parted", **sections), stop_after=3)
    rng = load_tensors(tmp_path / "parted" / "checkpoints" / "step-00000003" / "rng.rank0.pt")
    assert "gen.lowres" in rng
    second = run(tiny_config(tiny, tmp_path / "parted", **sections), resume=True)
    expected = [(r["step"], r["loss"], r["kd_lowres"]) for r in full.records if "loss" in r]
    assert [(r["step"], r["loss"], r["kd_lowres"]) for r in second.records if "loss" in r] == expected[3:]


def test_resume_drops_metrics_past_the_checkpoint(tiny, tmp_path):
    cfg = tiny_config(tiny, tmp_path / "out", train={"max_steps": 8, "ckpt_every": 4})
    run(cfg, stop_after=6)  # checkpoints at 4 and 6
    run(cfg, resume=tmp_path / "out" / "checkpoints" / "step-00000004", stop_after=5)
    assert [s for s, _ in _losses(tmp_path / "out" / "metrics.jsonl")] == [1, 2, 3, 4, 5]
