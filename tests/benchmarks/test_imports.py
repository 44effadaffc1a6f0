"""Every benchmark script still imports: a library name it uses that moved or was renamed fails here, not
the next time someone runs the benchmark (they run too long for the suite; their ``main`` is not called)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.repo import ROOT

SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_benchmark_script_imports(script, monkeypatch):
    name = f"benchmarks_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up while the class is made
    monkeypatch.setattr(sys, "path", list(sys.path))  # the scripts put the repository on sys.path
    spec.loader.exec_module(module)  # module level only: the scripts run under ``if __name__ == "__main__"``
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
