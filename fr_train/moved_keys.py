"""Training-config keys that moved: an old key is an error naming the key that replaced it.

The objective became one typed section (``objective:``): Partial FC, the teacher and low-resolution
distillation moved into it, and the list of auxiliary losses became a mapping of terms. A key under a
moved prefix maps to the new prefix plus the same rest (``partial_fc.sample_rate`` ->
``objective.partial_fc.sample_rate``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fr_data.io.errors import ConfigError

__all__ = ["MOVED_KEYS", "moved_key_errors", "reject_moved_keys"]

#: Old key (or prefix) -> its replacement.
MOVED_KEYS: dict[str, str] = {
    "partial_fc": "objective.partial_fc",
    "kd.mode": "objective.terms.ekd with objective.teacher (ekd) or objective.terms.kd_lowres (lowres): "
               "a term's needs decide what runs",
    "kd.teacher": "objective.teacher",
    "kd.lowres_scale": "objective.lowres_scale",
    "kd.classifier": "objective.terms.kd_lowres.classifier",
    "kd.classifier_key": "objective.terms.kd_lowres.classifier_key",
    "kd.weight": "objective.terms.kd_lowres.weight",
    "kd.s": "objective.terms.kd_lowres.s",
    "kd.m": "objective.terms.kd_lowres.m",
    "kd": "objective (teacher, lowres_scale, terms.ekd, terms.kd_lowres)",
    "objective.losses": "objective.terms: a mapping from term name to its settings, "
                        "e.g. objective.terms.ddl.weight",
}


def _leaf_paths(data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of every leaf (non-mapping value, or empty mapping) of ``data``."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaf_paths(value, f"{path}.")
        else:
            yield path


def _replacement(path: str) -> str | None:
    """The new key of ``path`` under the longest moved prefix, or None when it did not move."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        old = ".".join(parts[:end])
        if old in MOVED_KEYS:
            rest = parts[end:]
            new = MOVED_KEYS[old]
            return ".".join([new, *rest]) if rest and " " not in new else new
    return None


def moved_key_errors(data: Mapping[str, Any]) -> list[str]:
    """One ``old moved to new`` line per moved key set in the raw config mapping ``data``."""
    return [f"{path} moved to {new}" for path in _leaf_paths(data)
            if (new := _replacement(path)) is not None]


def reject_moved_keys(data: Mapping[str, Any]) -> None:
    """Raise a ConfigError naming every moved key of ``data`` and its new key."""
    errors = moved_key_errors(data)
    if errors:
        raise ConfigError("; ".join(errors))
