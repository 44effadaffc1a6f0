"""End-to-end tests of tools/shard.py on real RecordIO files and image folders."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fr_data.folders.shard_folder import REJECTED_SCHEMA, read_samples
from fr_data.formats.recordio import write_insightface
from fr_data.ingest.verify import verify_shards
from fr_data.io.parquet import read_table
from hardmine.cli import shard as shard
from tests.fr_data.ingest.test_shards import TRUNCATED, tiny_image
from tests.repo import ROOT

REPO = ROOT


def make_rec(folder: Path, classes: int = 4, per_class: int = 6, bad: dict[int, bytes] | None = None) -> list:
    """InsightFace-layout train.rec; image i (0-based) is record key i+1 with label i // per_class."""
    items = [(i // per_class, (bad or {}).get(i + 1, tiny_image(i))) for i in range(classes * per_class)]
    write_insightface(folder, items)
    return items


def test_shards_recordio_folder(tmp_path, capsys):
    items = make_rec(tmp_path / "rec")
    out = tmp_path / "out"
    assert shard.main(["--src", str(tmp_path / "rec"), "--out", str(out), "--per-shard", "5", "--seed", "3",
                       "--world-size", "2", "--loader-workers", "3"]) == 0
    assert "6 shards, 24 samples" in capsys.readouterr().out  # ceil(24/5)=5 -> multiple of 2x3
    rows = read_samples(out).to_pylist()
    assert sorted(r["source_index"] for r in rows) == list(range(1, 25))
    for row in rows:
        label, data = items[row["source_index"] - 1]
        assert row["label"] == label and row["sha256"] == hashlib.sha256(data).hexdigest()
    listing = json.loads((out / "shards.json").read_text())
    assert listing["args"]["per_shard"] == 5 and listing["args"]["src"] == str((tmp_path / "rec").resolve())
    assert [s["count"] for s in listing["shards"]] == [4] * 6
    assert verify_shards(out) == []


def test_rec_file_path_and_script_entry_point(tmp_path):
    make_rec(tmp_path / "rec", classes=2, per_class=3)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "tools" / "shard.py"), "--src",
                           str(tmp_path / "rec" / "train.rec"), "--out", str(out), "--per-shard", "4"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]


def test_image_folder_keeps_png_bytes(tmp_path):
    root = tmp_path / "faces"
    for identity, names in {"bob": ["a.jpg", "b.png"], "amy": ["c.jpg"]}.items():
        (root / identity).mkdir(parents=True)
        for n, name in enumerate(names):
            (root / identity / name).write_bytes(tiny_image(n + len(identity), fmt="PNG" if name.endswith("png")
                                                            else "JPEG"))
    out = tmp_path / "out"
    assert shard.main(["--src", str(root), "--out", str(out), "--per-shard", "10"]) == 0
    rows = {r["source_index"]: r for r in read_samples(out).to_pylist()}
    assert {i: (r["label"], r["ext"]) for i, r in rows.items()} == {0: (0, "jpg"), 1: (1, "jpg"), 2: (1, "png")}
    listed = subprocess.run(["tar", "-tf", str(out / "shard-000000.tar")], capture_output=True, text=True).stdout
    assert f"{rows[2]['key']}.png" in listed.split()
    assert rows[2]["sha256"] == hashlib.sha256((root / "bob" / "b.png").read_bytes()).hexdigest()


def test_corrupt_record_aborts_then_skip_corrupt_records_it(tmp_path, capsys):
    make_rec(tmp_path / "rec", bad={5: b"this is not an image", 9: TRUNCATED})
    out = tmp_path / "out"
    args = ["--src", str(tmp_path / "rec"), "--out", str(out), "--per-shard", "6", "--decode-check", "1"]
    assert shard.main(args) == 2
    err = capsys.readouterr().err
    assert "train.rec (key 5, offset" in err or "train.rec (key 9)" in err
    assert not (out / "samples.parquet").exists() and not (out / "shards.json").exists()
    assert shard.main(args + ["--skip-corrupt"]) == 0  # resumes the same plan, now skipping
    printed = capsys.readouterr().out
    assert "rejected 2 record(s)" in printed and "does not decode" in printed
    rejected = read_table(out / "rejected.parquet", REJECTED_SCHEMA).to_pylist()
    assert sorted(r["index"] for r in rejected) == [5, 9]
    assert all(r["source"].endswith("train.rec") for r in rejected)
    assert read_samples(out).num_rows == 22 and verify_shards(out) == []


def test_truncated_rec_is_a_clear_error(tmp_path, capsys):
    make_rec(tmp_path / "rec")
    rec = tmp_path / "rec" / "train.rec"
    rec.write_bytes(rec.read_bytes()[:-300])
    assert shard.main(["--src", str(tmp_path / "rec"), "--out", str(tmp_path / "out")]) == 2
    assert "train.rec" in capsys.readouterr().err


def test_different_arguments_refused_and_rerun_is_idempotent(tmp_path, capsys):
    make_rec(tmp_path / "rec")
    args = ["--src", str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--per-shard", "8"]
    assert shard.main(args + ["--workers", "2"]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert shard.main(args) == 0  # same plan, other worker count: nothing to do
    assert "already complete" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert shard.main(args[:-1] + ["7"]) == 2
    assert "different plan" in capsys.readouterr().err
    assert pq.read_table(tmp_path / "out" / "samples.parquet").num_rows == 24


def test_undecodable_file_in_image_folder_is_named(tmp_path, capsys):
    root = tmp_path / "faces"
    (root / "ann").mkdir(parents=True)
    (root / "ann" / "good.jpg").write_bytes(tiny_image(1))
    (root / "ann" / "half.jpg").write_bytes(TRUNCATED)
    out = tmp_path / "out"
    assert shard.main(["--src", str(root), "--out", str(out), "--decode-check", "1"]) == 2
    assert f"{root / 'ann' / 'half.jpg'} (index 1): image does not decode" in capsys.readouterr().err
    assert shard.main(["--src", str(root), "--out", str(out), "--skip-corrupt", "--decode-check", "1"]) == 0
    rejected = read_table(out / "rejected.parquet", REJECTED_SCHEMA).to_pylist()
    assert [(r["source"], r["where"]) for r in rejected] == [(str(root / "ann" / "half.jpg"), "index 1")]


def test_synth_then_shard_matches_ground_truth(tmp_path):
    synth = pytest.importorskip("tools.synth")
    assert synth.main(["--out", str(tmp_path / "syn"), "--identities", "6", "--images-per-identity", "5",
                       "--seed", "2", "--holdout-identities", "2", "--pairs", "4"]) == 0
    assert shard.main(["--src", str(tmp_path / "syn"), "--out", str(tmp_path / "out"), "--per-shard", "8",
                       "--decode-check", "1"]) == 0
    truth = pq.read_table(tmp_path / "syn" / "attributes.parquet", columns=["source_index", "label"]).to_pylist()
    rows = read_samples(tmp_path / "out").to_pylist()
    assert sorted((r["source_index"], r["label"]) for r in rows) == sorted(
        (t["source_index"], t["label"]) for t in truth)
    assert all(r["decoded_ok"] and (r["width"], r["height"]) == (112, 112) for r in rows)
    assert verify_shards(tmp_path / "out") == []
