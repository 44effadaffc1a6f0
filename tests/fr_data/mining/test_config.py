"""MiningConfig: YAML loading, unknown keys, range checks, the shipped configs/mining.yaml."""


import pytest

from fr_data.io.config import load_config
from fr_data.io.errors import ConfigError
from fr_data.mining.config import COS_75_DEGREES, MiningConfig, validate_config
from tests.repo import ROOT


def test_shipped_yaml_equals_the_defaults():
    cfg = load_config(ROOT / "configs" / "mining.yaml", MiningConfig)
    assert cfg == MiningConfig()
    assert validate_config(cfg) is cfg


def test_override_and_unknown_key(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("classes:\n  merge_cos: 0.4\nduplicates:\n  cos: 0.9\n")
    cfg = load_config(p, MiningConfig)
    assert cfg.classes.merge_cos == 0.4 and cfg.duplicates.cos == 0.9 and cfg.noise.vote_min == 0.0
    p.write_text("classes:\n  merge_cosine: 0.4\n")
    with pytest.raises(ConfigError, match="merge_cosine"):
        load_config(p, MiningConfig)


@pytest.mark.parametrize("section, key, value", [
    ("difficulty", "hard_fraction", 1.5), ("quality", "target_fpr", 0.0), ("neighbours", "k", 0),
    ("difficulty", "easy_fraction", 0.95), ("difficulty", "resolution_weight", -1.0),
    ("classes", "merge_mix", 0.0), ("classes", "merge_cos", 1.5)])
def test_out_of_range_values_are_rejected(section, key, value):
    cfg = MiningConfig()
    setattr(getattr(cfg, section), key, value)
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        validate_config(cfg)


def test_sub_center_rule_constant():
    assert COS_75_DEGREES == pytest.approx(0.258819, abs=1e-6)


def test_a_null_merge_rule_is_off_and_the_demo_config_loads(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("classes:\n  merge_cos: null\n")
    cfg = validate_config(load_config(p, MiningConfig))
    assert cfg.classes.merge_cos is None and cfg.classes.merge_mix == MiningConfig().classes.merge_mix
    demo = validate_config(load_config(ROOT / "configs" / "mining_demo.yaml", MiningConfig))
    assert demo.classes.merge_cos is None and demo.noise.margin_max == -0.2
