"""Tests of the ``tools/synth.py`` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fr_data.formats.verification import load_bin
from fr_data.io.parquet import read_table
from fr_data.synth import ATTRIBUTES_SCHEMA
from hardmine.cli import synth as synth
from tests.repo import ROOT


def test_main_generates_a_complete_data_set(tmp_path, capsys):
    rc = synth.main(["--out", str(tmp_path), "--identities", "4", "--images-per-identity", "3", "--seed", "2",
                     "--holdout-identities", "3", "--pairs", "4", "--mislabel-rate", "0.25"])
    assert rc == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["base_images"] == 12 and counts["mislabeled"] >= 3
    for name in ("train.rec", "train.idx", "property", "attributes.parquet", "synth_easy.bin",
                 "synth_pose.bin", "synth_lowres.bin", "synth.json"):
        assert (tmp_path / name).is_file(), name
    meta = json.loads((tmp_path / "synth.json").read_text())
    assert meta["parameters"]["mislabel_rate"] == 0.25 and meta["parameters"]["identities"] == 4
    assert read_table(tmp_path / "attributes.parquet", ATTRIBUTES_SCHEMA).num_rows == counts["num_images"]
    assert len(load_bin(tmp_path / "synth_pose.bin")) == 4


def test_invalid_rate_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        synth.main(["--out", str(tmp_path), "--identities", "2", "--images-per-identity", "2",
                    "--mislabel-rate", "1.5"])
    assert stop.value.code == 2 and "--mislabel-rate" in capsys.readouterr().err
    assert not (tmp_path / "train.rec").exists()


def test_runs_as_a_script(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "synth.py"), "--out", str(tmp_path),
                           "--identities", "2", "--images-per-identity", "2", "--pairs", "0"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["num_images"] >= 4
    assert not (tmp_path / "synth_easy.bin").exists()  # --pairs 0: no packs
