"""Packaged configs and queries, found from any working directory."""

from __future__ import annotations

import pytest

from fr_data.io.errors import ConfigError
from fr_data.io.shipped import config_file, packaged_configs, query_file, resolve_config, resolve_query
from tests.repo import ROOT


def test_packaged_files_are_the_repository_files():
    assert config_file("synth_tiny.yaml").read_bytes() == (ROOT / "configs" / "synth_tiny.yaml").read_bytes()
    query = ROOT / "manifests" / "queries" / "merge_candidates.sql"
    assert query_file("merge_candidates.sql").read_bytes() == query.read_bytes()
    on_disk = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
    assert packaged_configs() == on_disk


@pytest.mark.parametrize("arg", ["synth_tiny", "synth_tiny.yaml", "configs/synth_tiny.yaml"])
def test_resolve_config_by_name_from_another_folder(arg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config(arg) == config_file("synth_tiny.yaml")


def test_an_existing_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synth_tiny.yaml").write_text("base: x\n")
    assert resolve_config("synth_tiny.yaml") == tmp_path.joinpath("synth_tiny.yaml").relative_to(tmp_path)


def test_unknown_config_names_the_packaged_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no packaged config.*synth_tiny.yaml"):
        resolve_config("nope")


@pytest.mark.parametrize("arg", ["merge_candidates", "merge_candidates.sql", "manifests/queries/merge_candidates.sql"])
def test_resolve_query_by_name_from_another_folder(arg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_query(arg) == query_file("merge_candidates.sql")


def test_unknown_query_names_the_packaged_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no packaged query.*suspects_per_class.sql"):
        resolve_query("nope")
