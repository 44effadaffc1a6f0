"""``tools/*.py`` are thin wrappers: each runs the ``hardmine`` subcommand of the same job."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from hardmine.cli.main import SUBCOMMANDS
from tests.repo import ROOT

#: tools/<file>.py -> hardmine subcommand
WRAPPERS = {"synth": "synth", "shard": "shard", "verify_shards": "verify", "embed": "embed",
            "mine_hard": "mine", "query": "query", "demo": "demo", "report": "report", "experiment": "experiment",
            "experiment_pool": "experiment-pool", "export": "export", "overlap": "overlap"}


@pytest.mark.parametrize("tool, sub", sorted(WRAPPERS.items()))
def test_wrapper_runs_the_subcommand(tool, sub):
    wrapper = importlib.import_module(f"tools.{tool}")
    cli = importlib.import_module(f"hardmine.cli.{SUBCOMMANDS[sub][0]}")
    assert wrapper.main is cli.main and wrapper.build_parser is cli.build_parser


def test_every_tools_script_is_a_wrapper():
    scripts = {p.stem for p in (ROOT / "tools").glob("*.py")} - {"__init__"}
    assert scripts == set(WRAPPERS)


def test_wrapper_script_runs_from_another_folder(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "mine_hard.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--embeddings" in done.stdout
