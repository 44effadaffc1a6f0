"""The package as a user installs it: every module packaged, configs and queries inside, the command works."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import numpy
import pytest

from tests.repo import ROOT

MAPPED = {"hardmine.configs": "configs", "hardmine.queries": "manifests/queries"}


def _tree_packages() -> set[str]:
    found = set()
    for top in ("fr_data", "fr_train", "hardmine"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found | set(MAPPED)


def test_pyproject_lists_every_package_of_the_tree():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(setup["packages"]) == _tree_packages()
    assert setup["package-dir"] == MAPPED


def _copy_repository(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def this_interpreters_site_dirs() -> list[str]:
    """The site-packages folders of the interpreter running the tests (a virtualenv's own when the tests
    run in one, the system's otherwise), and the user site when this interpreter reads it."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return dirs


def make_venv_sharing_this_interpreters_packages(env_dir: Path, with_pip: bool = True) -> Path:
    """A fresh virtualenv whose interpreter also sees this interpreter's packages (torch, numpy...), and
    return its ``python``.

    ``system_site_packages=True`` is not that: from inside a virtualenv it gives the *base* interpreter's
    packages, not the virtualenv's. A ``.pth`` file in the new environment's site-packages appends this
    interpreter's site folders to ``sys.path`` instead, after the environment's own, so a package
    installed in the new environment comes first. Plain path lines: the ``.pth`` files of those folders
    (an editable install of this checkout) are not run.
    """
    venv.create(env_dir, system_site_packages=False, with_pip=with_pip)
    python = env_dir / "bin" / "python"
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    (Path(own) / "_hardmine_test_parent_site.pth").write_text("\n".join(this_interpreters_site_dirs()) + "\n")
    return python


#: Run in the test virtualenv: where numpy comes from, the environment, whether hardmine is importable.
WHAT_IT_SEES = """import importlib.util, sys, numpy
print(numpy.__file__); print(sys.prefix); print(importlib.util.find_spec("hardmine") is None)"""


def test_the_test_venv_sees_this_interpreters_packages_but_not_this_checkout(tmp_path):
    python = make_venv_sharing_this_interpreters_packages(tmp_path / "venv", with_pip=False)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run([python, "-c", WHAT_IT_SEES], cwd=tmp_path, env=env, capture_output=True, text=True,
                           check=True).stdout.split("\n")
    assert Path(found[0]).resolve() == Path(numpy.__file__).resolve()  # this interpreter's numpy
    assert Path(found[1]) == tmp_path / "venv"
    assert found[2] == "True"  # the checkout's editable install does not leak in


@pytest.mark.slow
def test_non_editable_install_runs_the_demo_from_any_folder(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.fail("the packaging test needs the git checkout to list the repository's files")
    source, env_dir, work = tmp_path / "src", tmp_path / "venv", tmp_path / "elsewhere"
    _copy_repository(source)
    work.mkdir()
    # the wheel is built by this Python's setuptools; the venv takes the dependencies from this Python too
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True, cwd=work, timeout=600)
    python = make_venv_sharing_this_interpreters_packages(env_dir)
    wheel = next((tmp_path / "dist").glob("hardmine-*.whl"))
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True, cwd=work,
                   timeout=600)
    shutil.rmtree(source)  # the installed package must not need the source tree
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([python, "-c", "import hardmine, fr_data; print(hardmine.__file__, fr_data.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(env_dir) for p in where), where
    demo = subprocess.run([env_dir / "bin" / "hardmine", "demo", "--out", "out", "--small", "--steps", "40"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (work / "out" / "summary.json").is_file() and "hardmine demo summary" in demo.stdout
