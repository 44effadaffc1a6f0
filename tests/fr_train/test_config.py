"""Tests of fr_train.config: base + overrides, validation errors naming the key, --set parsing, and
every shipped training config under configs/ loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from fr_data.io.errors import ConfigError
from fr_train.config import TrainConfig, load_train_config, parse_overrides, save_train_config
from fr_train.objective import HeadConfig
from tests.repo import ROOT

CONFIGS = ROOT / "configs"
TRAIN_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith("mining"))


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    text = "data: {shards: /data/shards}\nmodel: {name: tiny, embedding_size: 32}\n"
    return write(tmp_path, text, "base.yaml")


def test_base_chain_and_overrides(tmp_path, base):
    path = write(tmp_path, "base: base.yaml\ntrain: {epochs: 3}\n"
                           "objective: {head: {name: cosface, m: 0.35}}\n")
    cfg = load_train_config(path, parse_overrides(["optim.lr=0.05", "train.amp=bf16"]))
    assert (cfg.model.name, cfg.model.embedding_size, cfg.train.epochs) == ("tiny", 32, 3)
    assert cfg.objective.head == HeadConfig(name="cosface", s=64.0, m=0.35)
    assert (cfg.optim.lr, cfg.train.amp, cfg.optim.momentum) == (0.05, "bf16", 0.9)


@pytest.mark.parametrize("text, message", [
    ("data: {shards: x}\ntrian: {epochs: 3}\n", r"unknown key\(s\) \['trian'\]"),
    ("data: {shards: x}\ntrain: {epoch: 3}\n", r"train: unknown key\(s\) \['epoch'\]"),
    ("data: {shards: x, composer: {identites: 3}}\n", r"data.composer: unknown key\(s\) \['identites'\]"),
    ("data: {shards: x}\ntrain: {epochs: ten}\n", r"train.epochs: expected int"),
    ("data: {shards: x}\ntrain: {amp: fp8}\n", r"train.amp: 'fp8' is not one of"),
    ("data: {shards: x}\noptim: {lr: -1}\n", r"optim.lr must be > 0"),
    ("data: {shards: x}\nobjective: {heads: {name: arcface}}\n",
     r"objective: unknown key\(s\) \['heads'\]"),
    ("data: {shards: x}\nobjective: {head: {name: arcfase}}\n", r"unknown head 'arcfase'"),
    ("data: {shards: x}\nobjective: {terms: {dll: {}}}\n", r"objective.terms: unknown key\(s\) \['dll'\]"),
    ("data: {shards: x}\nobjective: {terms: {ddl: {sigmaa: 1}}}\n",
     r"objective.terms.ddl: unknown key\(s\) \['sigmaa'\]"),
    ("data: {shards: x}\nobjective: {terms: {ekd: {}}}\n",
     r"objective.terms.ekd needs teacher embeddings: set objective.teacher"),
    ("data: {shards: x}\nobjective: {terms: {ddl: {}}}\n",
     r"objective.terms.ddl needs composer branches: set data.composer.enabled"),
    ("data: {shards: x}\nobjective: {terms: {kd_lowres: {weight: 0.5}}}\n",
     r"objective.terms.kd_lowres.classifier: the teacher's classifier checkpoint is required"),
    ("data: {shards: x}\nobjective: {teacher: {name: tiny}, terms: {ekd: {}}}\n",
     r"objective.teacher.weights: a teacher checkpoint is required"),
    ("data: {shards: x}\nobjective: {partial_fc: {enabled: true}}\ninit: {head: h.pt}\n", r"init.head initialises"),
    ("data: {shards: x}\ninit: {heads: h.pt}\n", r"init: unknown key\(s\) \['heads'\]"),
    ("train: {epochs: 1}\n", r"data.shards must name the shard folder"),
])
def test_validation_errors_name_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_train_config(path)
    assert str(path) in str(info.value)


def test_parse_overrides_nests_and_reads_yaml_values():
    assert parse_overrides(["a.b.c=3", "a.b.d=[1, 2]", "e=null", "f=x=y"]) == {
        "a": {"b": {"c": 3, "d": [1, 2]}}, "e": None, "f": "x=y"}
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_overrides(["novalue"])
    with pytest.raises(ConfigError, match="already set"):
        parse_overrides(["a=1", "a.b=2"])


def test_saved_config_loads_back_equal(tmp_path, base):
    cfg = load_train_config(base, {"objective": {"terms": {"ot": {"weight": 0.5, "reference": "teacher"}},
                                                 "teacher": {"name": "tiny", "weights": "t.pt"}}})
    save_train_config(cfg, tmp_path / "config.yaml")
    assert load_train_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_train_config(path)
    assert isinstance(cfg, TrainConfig) and cfg.data.shards


def test_base_names_a_shipped_config_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("base: synth_tiny\ntrain: {max_steps: 7}\n")
    shipped = load_train_config(ROOT / "configs" / "synth_tiny.yaml")
    mine = load_train_config("mine.yaml")
    assert mine.train.max_steps == 7 and shipped.train.max_steps != 7
    assert mine.model == shipped.model
