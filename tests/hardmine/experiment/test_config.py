"""The experiment config: sizes merged over the file, every size validated, arms and their chains,
differing keys between two resolved configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fr_data.io.errors import ConfigError
from hardmine.experiment.arms import check_arms
from hardmine.experiment.config import differing_keys, experiment_dict, load_experiment
from tests.repo import ROOT

SHIPPED = ROOT / "configs" / "experiments" / "hard_samples.yaml"


def write(tmp_path: Path, data: dict, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


MINIMAL = {"arms": {"baseline": {}, "clean": {"extends": "baseline", "mining": True}},
           "sizes": {"small": {"synth": {"identities": 10}}, "full": {}}}


@pytest.mark.parametrize("size", ["small", "full"])
@pytest.mark.parametrize("name", ["hard_samples.yaml", "hard_samples_tuning.yaml", "hard_samples_replication.yaml",
                                  "hard_samples_pose.yaml", "hard_samples_fan.yaml"])
def test_the_shipped_configs_load_at_both_sizes_with_valid_arms(name, size):
    cfg = load_experiment(SHIPPED.parent / name, size)
    assert cfg.size == size
    assert {"baseline", "clean", "ddl", "ddl_ot", "lowres_aug"} <= set(cfg.arms)
    assert cfg.path(cfg.finetune.config).is_file() and cfg.path(cfg.pretrain.config).is_file()
    assert cfg.path(cfg.mining).is_file()
    check_arms(cfg, list(cfg.arms))  # every arm's training config is valid and meets the image budget


def test_a_size_is_merged_over_the_file(tmp_path):
    path = write(tmp_path, MINIMAL)
    small, full = load_experiment(path, "small"), load_experiment(path, "full")
    assert small.synth.identities == 10 and full.synth.identities == 300
    assert small.synth.images_per_identity == full.synth.images_per_identity
    assert differing_keys(experiment_dict(full), experiment_dict(small)) == ["size", "synth.identities"]


def test_base_chains_apply(tmp_path):
    write(tmp_path, MINIMAL, "base.yaml")
    path = write(tmp_path, {"base": "base.yaml", "finetune": {"images": 500}})
    cfg = load_experiment(path, "full")
    assert cfg.finetune.images == 500 and set(cfg.arms) == {"baseline", "clean"}


@pytest.mark.parametrize("change, message", [
    ({"finetune": {"imgs": 5}}, r"\(size \w+\): finetune: unknown key.*imgs"),
    ({"sizes": {"small": {"synth": {"identitys": 3}}, "full": {}}}, r"size small.*identitys"),
    ({"sizes": {"small": {}}}, r"missing \['full'\]"),
    ({"arms": {"clean": {"extends": "nope"}}}, r"arms.clean.extends: unknown arm 'nope'"),
    ({"arms": {"clean": {"minig": True}}}, r"arms.clean.*minig"),
    ({"arms": {"a": {"extends": "b"}, "b": {"extends": "a"}}}, r"circular extends \['a', 'b', 'a'\]"),
    ({"packs": {"test_seed": 0}}, "must differ"),
    ({"finetune": {"tolerance": 1.5}}, "finetune.tolerance"),
])
def test_bad_configs_are_refused_naming_the_key(tmp_path, change, message):
    data = {**MINIMAL, **change}
    with pytest.raises(ConfigError, match=message):
        load_experiment(write(tmp_path, data), "full")


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown size 'huge'"):
        load_experiment(write(tmp_path, MINIMAL), "huge")


def test_differing_keys_name_nested_added_and_removed_keys():
    old = {"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": 3}
    new = {"a": 1, "b": {"c": 3, "d": [1, 2], "f": 0}}
    assert differing_keys(old, new) == ["b.c", "b.f", "e"]
    assert differing_keys(old, old) == []


def test_the_synth_section_is_synthconfig_without_the_pack_fields():
    from dataclasses import MISSING, fields

    from fr_data.synth import SynthConfig
    from hardmine.experiment.config import SYNTH_PACK_FIELDS, SynthSection

    ours = {f.name: f.default for f in fields(SynthSection)}
    theirs = {f.name: f.default for f in fields(SynthConfig) if f.name not in SYNTH_PACK_FIELDS}
    assert list(ours) == list(theirs)  # the stages build a SynthConfig from this section's fields
    assert {k: v for k, v in ours.items() if theirs[k] is not MISSING} == {
        k: v for k, v in theirs.items() if v is not MISSING}
