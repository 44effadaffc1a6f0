"""YAML configs: a base file plus small overrides, validated against dataclasses.

A config file may start with ``base: other.yaml`` (a file relative to the config file, else the name of
a packaged config such as ``synth_tiny``: ``fr_data.io.shipped.resolve_config``); keys are merged
recursively, the override winning. The top-level path is resolved the same way, so every loader accepts
a packaged name. The merged mapping is then turned into the given dataclass: an unknown or
misspelt key, or a value of the wrong type, raises ConfigError naming the file and the key path.
``dump_config`` writes the resolved config (the thing that actually ran) next to outputs.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fr_data.io.atomic import atomic_write_text
from fr_data.io.errors import ConfigError
from fr_data.io.shipped import resolve_config

T = TypeVar("T")


def load_yaml_with_bases(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load ``path`` (a file or a packaged config name) and the chain of ``base:`` files under it, merged
    (override wins)."""
    path = resolve_config(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular 'base:' chain {[str(p) for p in _seen]}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    bases = [base] if isinstance(base, str) else list(base)
    merged: dict[str, Any] = {}
    for b in bases:
        if not isinstance(b, str):
            raise ConfigError(f"{path}: base: expected a file name or a list of them, got {b!r}")
        try:
            base_path = resolve_config(b, path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: base: {exc}") from exc
        merged = deep_merge(merged, load_yaml_with_bases(base_path, _seen + (path,)))
    return deep_merge(merged, data)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge two mappings; values of ``override`` win, nested dicts merge."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        hint = ", ".join(sorted(fields))
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; valid keys: {hint}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}" if where else name)
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def load_config(path: str | os.PathLike, cls: type[T], overrides: dict[str, Any] | None = None) -> T:
    """Load a YAML config (with ``base:`` chain and optional overrides) into dataclass ``cls``."""
    data = load_yaml_with_bases(path)
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return from_dict(cls, data, where="")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def to_dict(config: Any) -> dict[str, Any]:
    """The resolved config as plain data (for saving next to checkpoints and manifests)."""
    return dataclasses.asdict(config)


def dump_config(config: Any, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:  # Optional[X]: the error of X itself
            return _coerce(options[0], value, where)
        errors = []
        for arg in options:
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} matches none of {tp}: {errors}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (arg, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    return _coerce_scalar(tp, value, where)


def _coerce_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML reads 1e-4 as a string; accept numeric strings for float fields
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got bool {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")
