"""Shared helpers of the command tests: the tiny backbone as a ``--model`` SPEC and a module-scoped folder of
tiny shards to embed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fr_data.embed.helpers import make_shards

#: ``--model`` SPEC of the tiny deterministic backbone (``package.module:factory``).
TINY = "tests.fr_data.embed.helpers:make_tiny"


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Ten tiny samples in three shards, with their manifest."""
    folder = tmp_path_factory.mktemp("shards")
    make_shards(folder, n=10, n_shards=3)
    return folder
