"""Config keys that moved into the typed objective section: each old key is a ConfigError naming the new
key (in a file, through a ``base:`` chain, through ``--set``, and from the CLI with exit status 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fr_data.io.errors import ConfigError
from fr_train.__main__ import main
from fr_train.config import load_train_config, parse_overrides
from fr_train.moved_keys import MOVED_KEYS, moved_key_errors

BASE = "data: {shards: /data/shards}\nmodel: {name: tiny, embedding_size: 16}\n"


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, old, new", [
    ("partial_fc: {enabled: true}\n", "partial_fc.enabled", "objective.partial_fc.enabled"),
    ("partial_fc: {sample_rate: 0.1}\n", "partial_fc.sample_rate", "objective.partial_fc.sample_rate"),
    ("kd: {mode: ekd}\n", "kd.mode", "objective.terms.ekd with objective.teacher"),
    ("kd: {teacher: {name: iresnet50, weights: t.pt}}\n", "kd.teacher.weights", "objective.teacher.weights"),
    ("kd: {classifier: run/objective.pt}\n", "kd.classifier", "objective.terms.kd_lowres.classifier"),
    ("kd: {classifier_key: w}\n", "kd.classifier_key", "objective.terms.kd_lowres.classifier_key"),
    ("kd: {weight: 0.5}\n", "kd.weight", "objective.terms.kd_lowres.weight"),
    ("kd: {s: 16.0}\n", "kd.s", "objective.terms.kd_lowres.s"),
    ("kd: {m: 0.2}\n", "kd.m", "objective.terms.kd_lowres.m"),
    ("kd: {lowres_scale: [0.25, 0.5]}\n", "kd.lowres_scale", "objective.lowres_scale"),
    ("objective: {losses: [{name: ddl}]}\n", "objective.losses", "objective.terms"),
])
def test_old_key_names_the_new_key(tmp_path, text, old, new):
    path = write(tmp_path, BASE + text)
    with pytest.raises(ConfigError, match="moved to") as info:
        load_train_config(path)
    message = str(info.value)
    assert str(path) in message and f"{old} moved to {new}" in message


def test_every_table_entry_is_reported_with_its_replacement():
    for old, new in MOVED_KEYS.items():
        data: dict = {}
        node = data
        *parents, leaf = old.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = 1
        assert moved_key_errors(data) == [f"{old} moved to {new}"]
    assert moved_key_errors({"objective": {"head": {"name": "arcface"}, "terms": {}}, "train": {}}) == []


def test_old_keys_in_a_base_file_and_overrides_are_all_named(tmp_path):
    write(tmp_path, BASE + "partial_fc: {enabled: true, sample_rate: 0.5}\n", "base.yaml")
    path = write(tmp_path, "base: base.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(path, parse_overrides(["kd.weight=0.5"]))
    message = str(info.value)
    for old, new in (("partial_fc.enabled", "objective.partial_fc.enabled"),
                     ("partial_fc.sample_rate", "objective.partial_fc.sample_rate"),
                     ("kd.weight", "objective.terms.kd_lowres.weight")):
        assert f"{old} moved to {new}" in message


def test_set_paths_into_the_new_section(tmp_path):
    path = write(tmp_path, BASE)
    overrides = parse_overrides(["objective.partial_fc.enabled=true", "objective.partial_fc.sample_rate=0.25",
                                 "objective.terms.ot={weight: 0.2, reference: teacher}",
                                 "objective.teacher.weights=t.pt", "objective.teacher.name=tiny",
                                 "objective.lowres_scale=[0.25, 0.5]"])
    cfg = load_train_config(path, overrides).objective
    assert (cfg.partial_fc.enabled, cfg.partial_fc.sample_rate) == (True, 0.25)
    assert (cfg.terms.ot.weight, cfg.terms.ot.reference, cfg.terms.ot.eps) == (0.2, "teacher", 0.05)
    assert (cfg.teacher.name, cfg.teacher.weights, cfg.lowres_scale) == ("tiny", "t.pt", [0.25, 0.5])


def test_cli_exits_2_naming_the_new_key(tmp_path, capsys):
    path = write(tmp_path, BASE)
    assert main(["--config", str(path), "--set", "partial_fc.enabled=true"]) == 2
    assert "partial_fc.enabled moved to objective.partial_fc.enabled" in capsys.readouterr().err
