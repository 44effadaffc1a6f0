"""Shared test setup: the ``gpu`` marker skips (with its reason) on machines without a CUDA GPU; the tiny
demo run (session fixture ``tiny_demo``, shared by tests/tools/test_demo.py and the review-page browser
tests).

torch is a required dependency, so it is imported plainly: a broken install fails the run instead of
looking like a machine without a GPU.
"""

from __future__ import annotations

import os

import pytest
import torch

from tests.demo_run import tiny_demo  # noqa: F401  (session fixture)


def pytest_configure(config):
    """Under pytest-xdist (the README's ``-n`` command) each worker gets one torch/BLAS thread, so that the
    workers share the cores instead of oversubscribing them; subprocesses inherit it through the env."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", "1")
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One intra-op torch thread: tiny models gain nothing from more, and a shared CI machine loses a lot."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
