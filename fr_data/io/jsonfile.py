"""Reading the small JSON side files of a run folder (``run.json``, ``shards.json``, ...)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fr_data.io.errors import DataError

__all__ = ["read_json_object"]


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object stored in ``path``; ``{}`` when the file does not exist.

    Raises:
        DataError: naming the file, when it is not valid JSON or holds something other than an object.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(path, "", f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(path, "", f"expected a JSON object, found {type(data).__name__}")
    return data
