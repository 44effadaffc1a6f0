"""Shared by the folder tests: the columns ``manifests/README.md`` documents for a table."""

from __future__ import annotations

import re

from tests.repo import ROOT


def documented_columns(title: str) -> list[str]:
    """The first code span of each table row under the heading ``### `title` `` of manifests/README.md."""
    text = (ROOT / "manifests" / "README.md").read_text(encoding="utf-8")
    part = text.split(f"### `{title}`", 1)[1].split("\n#", 1)[0]
    return [re.findall(r"`([^`]+)`", line)[0] for line in part.splitlines() if line.startswith("| `")]
