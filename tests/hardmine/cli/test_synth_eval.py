"""``hardmine synth --eval-out``: the evaluation set with planted overlap from the command line."""

from __future__ import annotations

import json

import pytest

from fr_data.io.parquet import read_table
from fr_data.synth.eval_set import TRUTH_SCHEMA
from hardmine.cli import synth

BASE = ["--identities", "4", "--images-per-identity", "3", "--seed", "1", "--holdout-identities", "2",
        "--pairs", "0"]


def test_training_and_evaluation_set_then_evaluation_set_only(tmp_path, capsys):
    out, first, second = tmp_path / "synth", tmp_path / "EVAL1", tmp_path / "EVAL2"
    assert synth.main(["--out", str(out), *BASE, "--eval-out", str(first), "--overlap-identities", "2",
                       "--leaked-images", "2", "--disjoint-identities", "2"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts["images"] == 12 and counts["shared_labels"] >= 2 and counts["copies"]["exact"] == 1
    train_rec = (out / "train.rec").stat().st_mtime_ns
    assert synth.main(["--out", str(out), *BASE, "--eval-out", str(second), "--overlap-identities", "2",
                       "--leaked-images", "2", "--disjoint-identities", "2", "--eval-only"]) == 0
    assert (out / "train.rec").stat().st_mtime_ns == train_rec  # the training set was not rewritten
    assert (second / "overlap_eval.bin").read_bytes() == (first / "overlap_eval.bin").read_bytes()
    truth = read_table(second / "truth.parquet", TRUTH_SCHEMA)
    assert truth.column("copy_kind").to_pylist().count("exact") == 1


@pytest.mark.parametrize("extra, fragment", [
    (["--leaked-images", "3"], "need --eval-out"),
    (["--eval-out", "{out}/inside"], "inside"),
    (["--eval-out", "{tmp}/EVAL", "--eval-only"], "no synth.json"),
])
def test_bad_evaluation_set_flags_are_one_line_exit_2(tmp_path, capsys, extra, fragment):
    out = tmp_path / "synth"
    extra = [e.format(out=out, tmp=tmp_path) for e in extra]
    assert synth.main(["--out", str(out), *BASE, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hardmine synth: error: ") and fragment in err[0]
    assert not (tmp_path / "EVAL").exists()
