"""Every dotted ``fr_data.`` / ``fr_train.`` / ``hardmine.`` name that the packages' sources and the docs
mention resolves: a module that imports, then an attribute chain on it (a dataclass field counts). A module
moved or renamed without its mentions fails here, naming the file and line of each stale one. Library
docstrings and comments name commands as ``hardmine <sub>``, not by their ``tools/*.py`` wrappers."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import io
import re
import tokenize
from functools import cache
from pathlib import Path

from tests.repo import ROOT

PACKAGES = ("fr_data", "fr_train", "hardmine")
#: Package names that ``pyproject.toml`` maps onto repository folders (``hardmine/resources.py``).
RESOURCE_PACKAGES = {"hardmine.configs": ROOT / "configs", "hardmine.queries": ROOT / "manifests" / "queries"}
#: Dotted strings that are identifiers, not module paths (output they appear in must stay byte-identical).
IDENTIFIERS = {"hardmine.synth"}  # the generator name in synth.json and the attributes.parquet metadata
#: A dotted name not inside a longer name or a path (``tests.fr_data.x``, ``a/fr_data.x`` are not ours).
NAME = re.compile(r"(?<![\w./-])(?:fr_data|fr_train|hardmine)(?:\.[A-Za-z_]\w*)+")


def sources() -> list[Path]:
    """The packages' Python files and the documentation pages."""
    files = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    docs = sorted((ROOT / "docs").glob("*.md"))
    return files + docs + [ROOT / "README.md", ROOT / "manifests" / "README.md"]


def mentions(path: Path) -> list[tuple[int, str]]:
    """``(line, name)`` of every dotted name in the file."""
    return [(number, match.group(0))
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
            for match in NAME.finditer(line)]


def _has(obj: object, name: str) -> bool:
    fields = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
    return hasattr(obj, name) or name in fields


@cache
def resolves(name: str) -> bool:
    """Whether the longest importable module prefix of ``name`` has the rest as an attribute chain."""
    if name in IDENTIFIERS:
        return True
    if name in RESOURCE_PACKAGES:
        return RESOURCE_PACKAGES[name].is_dir()
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        if parts[cut - 1] == "__main__":  # importing it would run the command
            found = (ROOT / Path(*parts[:cut - 1]) / "__main__.py").is_file()
            return found and cut == len(parts)
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not module_name.startswith(exc.name):
                raise  # a real import error inside an existing module
            continue
        for attr in parts[cut:]:
            if not _has(obj, attr):
                return False
            obj = getattr(obj, attr, None)
        return True
    return False


def test_every_dotted_name_in_sources_and_docs_resolves():
    stale = [f"{path.relative_to(ROOT)}:{line}: {name}"
             for path in sources() for line, name in mentions(path) if not resolves(name)]
    assert not stale, "names of nothing:\n" + "\n".join(stale)


def test_the_scan_sees_names_and_refuses_unknown_ones():
    assert resolves("fr_data.io.errors.DataError")
    assert resolves("fr_train.objective.quality.load_quality_model")
    assert resolves("fr_train.data.selection.Selection.keys")  # a dataclass field without a default
    assert not resolves("fr_data.ingest.shards") and not resolves("fr_train.quality.load_quality_model")
    assert mentions(ROOT / "docs" / "architecture.md")  # the pattern matches what the docs write


#: The wrapper scripts' paths (``tools/shard.py``); the commands in hardmine/cli/ document their own usage.
TOOL_PATH = re.compile(r"tools/\w+\.py")


def prose(path: Path) -> list[tuple[int, str]]:
    """``(line, text)`` of the file's docstrings and comments (strings that are data are left out)."""
    text = path.read_text(encoding="utf-8")
    found = [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(text).readline)
             if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            found.append((body[0].lineno, body[0].value.value))
    return found


def test_library_docstrings_name_commands_not_tool_scripts():
    library = [path for path in sources() if path.suffix == ".py" and "cli" not in path.relative_to(ROOT).parts]
    found = [f"{path.relative_to(ROOT)}:{line}: {match}" for path in library
             for line, text in prose(path) for match in TOOL_PATH.findall(text)]
    assert not found, "say `hardmine <sub>` instead:\n" + "\n".join(found)
