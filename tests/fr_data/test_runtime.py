"""Tests of fr_data.runtime: device choice and joining/leaving the process group.

The multi-rank paths run end to end under torchrun in tests/fr_train/test_torchrun.py (training) and
tests/hardmine/cli/test_embed.py (embedding); here the single-process rules, with CUDA's presence
simulated so the answers do not depend on the machine.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from fr_data import runtime
from fr_data.io.errors import ConfigError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    assert runtime.resolve_device("auto") == torch.device("cpu")
    assert runtime.resolve_device("cpu") == torch.device("cpu")


def test_auto_is_the_local_rank_gpu(gpu, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert runtime.resolve_device("auto") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert runtime.resolve_device("auto") == torch.device("cuda", 3)
    assert runtime.resolve_device("cuda") == torch.device("cuda", 3)
    assert runtime.resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_a_gpu_and_unknown_choices_are_config_errors(no_gpu):
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        runtime.resolve_device("cuda")
    with pytest.raises(ConfigError, match="expected one of auto, cpu, cuda"):
        runtime.resolve_device("tpu")


def test_one_process_joins_no_group(no_gpu, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert runtime.join_process_group(torch.device("cpu")) is False
    monkeypatch.setenv("WORLD_SIZE", "1")
    with runtime.process_group("auto") as device:
        assert device == torch.device("cpu")
        assert not dist.is_initialized()
        assert runtime.rank_world() == (0, 1)
    runtime.leave_process_group()  # without a group: nothing to do


def test_process_group_joins_from_the_environment_and_leaves(no_gpu, monkeypatch, tmp_path):
    # WORLD_SIZE > 1 makes the helper join; a file:// store stands in for torchrun's rendezvous so one
    # process can hold a group of one (the helper passes init_method env:// -> read from the environment)
    monkeypatch.setenv("WORLD_SIZE", "2")
    joined = {}
    real_init = dist.init_process_group

    def init(backend, init_method, **kwargs):
        joined.update(backend=backend, init_method=init_method, **kwargs)
        real_init(backend, init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)

    monkeypatch.setattr(dist, "init_process_group", init)
    with runtime.process_group("cpu") as device:
        assert device == torch.device("cpu")
        assert dist.is_initialized()
        assert runtime.rank_world() == (0, 1)
    assert joined == {"backend": "gloo", "init_method": "env://"}
    assert not dist.is_initialized()
    assert runtime.gloo_threads() == []


def test_finished_ranks_meet_and_a_failed_rank_leaves_without_waiting(no_gpu, monkeypatch):
    left = []
    monkeypatch.setattr(runtime, "join_process_group", lambda device, timeout=None: True)
    monkeypatch.setattr(runtime, "leave_process_group", lambda synchronise=True: left.append(synchronise))
    with runtime.process_group("cpu"):
        pass
    with pytest.raises(ValueError, match="boom"), runtime.process_group("cpu"):
        raise ValueError("boom")
    assert left == [True, False]


def test_a_group_this_helper_did_not_start_is_left_alone(no_gpu, monkeypatch):
    monkeypatch.setattr(runtime, "join_process_group", lambda device, timeout=None: False)
    monkeypatch.setattr(runtime, "leave_process_group", lambda synchronise=True: pytest.fail("left"))
    with runtime.process_group("cpu") as device:
        assert device.type == "cpu"
