"""Stage stamps: started vs done, inputs compared as plain data, unreadable stamps mean 'redo'."""

from __future__ import annotations

from pathlib import Path

from fr_train.config import load_train_config
from hardmine.pipelines.stages import non_default, stamped_config
from hardmine.pipelines.stamps import begin, is_current, is_started, read_stamp, write_stamp
from tests.repo import ROOT


def test_a_stage_is_current_only_when_done_with_the_same_inputs(tmp_path):
    stamp = tmp_path / "stages" / "train.json"
    stamp.parent.mkdir()
    inputs = {"config": {"lr": 0.01, "path": Path("/a/b")}, "sha": "abc"}
    assert not is_started(stamp, inputs) and not is_current(stamp, inputs)
    begin(stamp, inputs)
    assert is_started(stamp, inputs) and not is_current(stamp, inputs)
    write_stamp(stamp, inputs, {"steps": 3})
    assert is_current(stamp, {"sha": "abc", "config": {"path": "/a/b", "lr": 0.01}})  # plain-data equality
    assert not is_current(stamp, {**inputs, "sha": "abd"}) and not is_started(stamp, {**inputs, "sha": "abd"})
    assert read_stamp(stamp)["info"] == {"steps": 3}


def test_an_unreadable_stamp_reads_as_none(tmp_path):
    (tmp_path / "s.json").write_text("{not json")
    (tmp_path / "l.json").write_text("[1, 2]")
    assert read_stamp(tmp_path / "s.json") is None and read_stamp(tmp_path / "l.json") is None
    assert not is_current(tmp_path / "s.json", {}) and read_stamp(tmp_path / "missing.json") is None


def test_stamped_configs_are_relative_to_the_experiment_folder(tmp_path):

    config = ROOT / "configs" / "synth_tiny.yaml"

    def stamped(root: Path) -> dict:
        cfg = load_train_config(config, {"data": {"shards": str(root / "shards")}, "train": {
            "output": str(root / "runs" / "a"), "device": "cpu", "progress": False}})
        return stamped_config(cfg, root)

    a, b = stamped(tmp_path / "one"), stamped(tmp_path / "two")
    assert a == b and a["data"]["shards"] == "$EXP/shards" and a["train"]["output"] == "$EXP/runs/a"
    assert "device" not in a["train"] and "progress" not in a["train"]  # how fast, not what
    assert "init" not in a and "partial_fc" not in a  # sections at their defaults
    assert a["model"] == {"name": "tiny", "embedding_size": 64}  # only what differs from the defaults


def test_non_default_keeps_what_differs_key_by_key():
    default = {"a": 1, "b": {"c": 2, "d": [1]}, "e": None}
    assert non_default({"a": 1, "b": {"c": 3, "d": [1]}, "e": None, "new": 0}, default) == {"b": {"c": 3}, "new": 0}
    assert non_default(default, default) == {}
