"""Files that ship inside the package: the training, mining and experiment configs (``configs/`` in the
repository) and the ready DuckDB queries (``manifests/queries/``), and the one rule that turns a name into
such a file.

``pyproject.toml`` maps those folders to the packages ``hardmine.configs`` and ``hardmine.queries`` (data
packages: nothing of the ``hardmine`` layer is imported to read them), so an installed ``hardmine`` finds
them from any working directory, editable or not. Every place that reads a config (``--config`` of every
command, a config file's ``base:`` entries) or a query (``hardmine query --file``) resolves names here,
so a shipped name works the same way everywhere.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from fr_data.io.errors import ConfigError

CONFIG_PACKAGE = "hardmine.configs"
QUERY_PACKAGE = "hardmine.queries"


def config_file(name: str) -> Path:
    """The packaged config ``name`` (e.g. ``"synth_tiny.yaml"`` or ``"experiments/hard_samples.yaml"``)."""
    return Path(str(files(CONFIG_PACKAGE).joinpath(name)))


def query_file(name: str) -> Path:
    """The packaged query ``name`` (e.g. ``"merge_candidates.sql"``)."""
    return Path(str(files(QUERY_PACKAGE).joinpath(name)))


def resolve_config(arg: str | os.PathLike, relative_to: str | os.PathLike | None = None) -> Path:
    """A config named on the command line or in a ``base:`` entry: an existing file, else the packaged
    config of that name (``configs/`` prefix and ``.yaml`` suffix optional), so ``--config mining_demo``
    and ``base: synth_tiny`` work from any folder.

    Args:
        arg: a path or a packaged name.
        relative_to: the folder a relative path is read from (the folder of the config file holding a
            ``base:`` entry); the working directory when None.

    Raises:
        ConfigError: neither a file nor a packaged config.
    """
    path = Path(arg)
    local = Path(relative_to) / path if relative_to is not None else path
    if local.is_file():
        return local
    name = path.as_posix().removeprefix("configs/")
    for candidate in (name, f"{name}.yaml"):
        packaged = config_file(candidate)
        if packaged.is_file():
            return packaged
    raise ConfigError(f"{arg}: no such config file, and no packaged config of that name "
                      f"(packaged: {', '.join(packaged_configs())})")


def packaged_configs() -> list[str]:
    """Names of the packaged configs (relative to ``configs/``), sorted."""
    root = Path(str(files(CONFIG_PACKAGE)))
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml"))


def resolve_query(arg: str | os.PathLike) -> Path:
    """A query file given on the command line: an existing file as given, else the packaged query of that
    name (``manifests/queries/`` prefix and ``.sql`` suffix optional).

    Raises:
        ConfigError: neither a file nor a packaged query.
    """
    path = Path(arg)
    if path.is_file():
        return path
    name = path.as_posix().removeprefix("manifests/queries/").removesuffix(".sql") + ".sql"
    packaged = query_file(name)
    if packaged.is_file():
        return packaged
    known = sorted(p.name for p in Path(str(files(QUERY_PACKAGE))).glob("*.sql"))
    raise ConfigError(f"{arg}: no such query file, and no packaged query of that name (packaged: {', '.join(known)})")
