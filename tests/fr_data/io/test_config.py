from dataclasses import dataclass, field

import pytest
import yaml

from fr_data.io.config import dump_config, load_config, load_yaml_with_bases
from fr_data.io.errors import ConfigError


@dataclass
class Optim:
    lr: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class Cfg:
    name: str = "x"
    steps: int = 10
    optim: Optim = field(default_factory=Optim)
    note: str | None = None


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_base_and_override_merge(tmp_path):
    _write(tmp_path / "base.yaml", {"name": "base", "steps": 5, "optim": {"lr": 0.2}})
    child = _write(tmp_path / "child.yaml", {"base": "base.yaml", "optim": {"betas": [0.5, 0.6]}})
    cfg = load_config(child, Cfg)
    assert cfg == Cfg(name="base", steps=5, optim=Optim(lr=0.2, betas=[0.5, 0.6]))


def test_unknown_nested_key_is_an_error(tmp_path):
    path = _write(tmp_path / "c.yaml", {"optim": {"lrr": 0.1}})
    with pytest.raises(ConfigError, match=r"optim: unknown key\(s\) \['lrr'\]"):
        load_config(path, Cfg)


def test_wrong_type_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="steps: expected int"):
        load_config(_write(tmp_path / "c.yaml", {"steps": "ten"}), Cfg)
    with pytest.raises(ConfigError, match="steps: expected int, got bool"):
        load_config(_write(tmp_path / "d.yaml", {"steps": True}), Cfg)


def test_float_accepts_int_and_scientific_string(tmp_path):
    cfg = load_config(_write(tmp_path / "c.yaml", {"optim": {"lr": "1e-4"}}), Cfg)
    assert cfg.optim.lr == pytest.approx(1e-4)
    assert load_config(_write(tmp_path / "d.yaml", {"optim": {"lr": 1}}), Cfg).optim.lr == 1.0


def test_circular_base_is_an_error(tmp_path):
    _write(tmp_path / "a.yaml", {"base": "b.yaml"})
    _write(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yaml", Cfg)


def test_dump_round_trips(tmp_path):
    cfg = Cfg(name="r", steps=3, note="hi")
    dump_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml", Cfg) == cfg


@dataclass
class Maybe:
    optim: Optim | None = None
    count: int | None = None


def test_optional_field_reports_the_inner_error(tmp_path):
    path = _write(tmp_path / "c.yaml", {"optim": {"lrr": 0.1}})
    with pytest.raises(ConfigError, match=r"optim: unknown key\(s\) \['lrr'\]; valid keys: betas, lr$"):
        load_config(path, Maybe)
    with pytest.raises(ConfigError, match=r"count: expected int, got 'ten'$"):
        load_config(_write(tmp_path / "d.yaml", {"count": "ten"}), Maybe)
    assert load_config(_write(tmp_path / "e.yaml", {"optim": None, "count": 3}), Maybe) == Maybe(None, 3)
    assert load_config(_write(tmp_path / "f.yaml", {"optim": {"lr": 1}}), Maybe).optim == Optim(lr=1.0)


def test_base_names_a_packaged_config_from_any_folder(tmp_path, monkeypatch):
    from fr_data.io.shipped import config_file
    from fr_data.mining.config import MiningConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("base: mining_demo\nclasses:\n  merge_cos: 0.45\n")
    shipped = load_config(config_file("mining_demo.yaml"), MiningConfig)
    mine = load_config("mine.yaml", MiningConfig)
    assert mine.classes.merge_cos == 0.45
    assert mine.noise == shipped.noise  # everything else comes from the shipped base


def test_a_base_file_beside_the_config_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cfgs"
    folder.mkdir()
    (folder / "mining_demo.yaml").write_text("a: 7\n")
    (folder / "top.yaml").write_text("base: mining_demo.yaml\nb: 1\n")
    assert load_yaml_with_bases(folder / "top.yaml") == {"a": 7, "b": 1}


def test_load_config_takes_a_packaged_name_from_any_folder(tmp_path, monkeypatch):
    from fr_data.mining.config import MiningConfig

    monkeypatch.chdir(tmp_path)
    assert load_config("mining_demo", MiningConfig) == load_config("configs/mining_demo.yaml", MiningConfig)


def test_an_unknown_base_names_the_file_that_asks_for_it(tmp_path):
    top = tmp_path / "top.yaml"
    top.write_text("base: no_such_config\n")
    with pytest.raises(ConfigError, match=r"top\.yaml: base: no_such_config: no such config file"):
        load_yaml_with_bases(top)


def test_a_base_that_is_not_a_name_is_an_error(tmp_path):
    top = tmp_path / "top.yaml"
    top.write_text("base: [3]\n")
    with pytest.raises(ConfigError, match="base: expected a file name"):
        load_yaml_with_bases(top)
