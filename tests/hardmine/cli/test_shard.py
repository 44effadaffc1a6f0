"""End-to-end tests of tools/shard.py on real RecordIO files and image folders."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import tqdm as tqdm_module

from fr_data.folders.shard_folder import REJECTED_SCHEMA, read_samples
from fr_data.formats.recordio import load_idx
from fr_data.ingest.verify import verify_shards
from fr_data.io.errors import DataError
from fr_data.io.parquet import read_table
from fr_data.io.policy import ErrorPolicy
from hardmine.cli import shard as shard
from hardmine.cli import synth as synth
from tests.fr_data.ingest.helpers import TRUNCATED, tiny_image
from tests.hardmine.cli.helpers import make_rec
from tests.repo import ROOT

REPO = ROOT


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


# -- damaged RecordIO (issue 11) ----------------------------------------------------------------------
def _index(folder: Path) -> dict[int, int]:
    keys, offsets = load_idx(folder / "train.idx")
    return dict(zip(keys.tolist(), offsets.tolist()))


def _sharded(out: Path) -> dict[int, tuple[int, str]]:
    return {r["source_index"]: (r["label"], r["sha256"]) for r in read_samples(out).to_pylist()}


def _expected(items: list, keys) -> dict[int, tuple[int, str]]:
    return {k: (items[k - 1][0], hashlib.sha256(items[k - 1][1]).hexdigest()) for k in keys}


def test_truncated_rec_with_intact_idx(tmp_path, capsys):
    """Strict: refused naming the index line and the flags; --skip-corrupt or --repair-idx: every whole
    record sharded, every index entry past the end (or cut short) listed without a shard."""
    items = make_rec(tmp_path / "rec")
    index = _index(tmp_path / "rec")
    rec = tmp_path / "rec" / "train.rec"
    rec.write_bytes(rec.read_bytes()[:index[15] + 100])  # record 15 cut short, 16.. gone
    args = ["--src", str(tmp_path / "rec"), "--per-shard", "5"]
    assert shard.main([*args, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "train.idx (key 16): offset" in err and "--repair-idx" in err and "--skip-corrupt" in err
    assert not (tmp_path / "strict" / "samples.parquet").exists()
    for flag in ("--skip-corrupt", "--repair-idx"):
        out = tmp_path / flag.strip("-")
        assert shard.main([*args, "--out", str(out), flag]) == 0
        assert _sharded(out) == _expected(items, range(1, 15))
        rejected = read_table(out / "rejected.parquet", REJECTED_SCHEMA).to_pylist()
        assert sorted(r["index"] for r in rejected) == list(range(15, 29))  # images 15..24, 4 identity records
        assert all(r["shard"] is None and r["source"].endswith("train.idx") for r in rejected)
        assert f"rejected {len(rejected)} record(s)" in capsys.readouterr().out


def test_truncated_rec_without_idx(tmp_path, capsys):
    items = make_rec(tmp_path / "rec")
    index = _index(tmp_path / "rec")
    (tmp_path / "rec" / "train.idx").unlink()
    rec = tmp_path / "rec" / "train.rec"
    rec.write_bytes(rec.read_bytes()[:index[20] + 30])
    args = ["--src", str(tmp_path / "rec"), "--per-shard", "5"]
    assert shard.main([*args, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"train.rec (offset {index[20]}): truncated record" in err and "--skip-corrupt" in err
    assert shard.main([*args, "--out", str(tmp_path / "out"), "--skip-corrupt"]) == 0
    assert _sharded(tmp_path / "out") == _expected(items, range(1, 20))
    assert not (tmp_path / "rec" / "train.idx").exists()  # no index written for a damaged .rec
    rejected = read_table(tmp_path / "out" / "rejected.parquet", REJECTED_SCHEMA).to_pylist()
    assert [(r["index"], r["where"]) for r in rejected] == [(None, f"offset {index[20]}")]


def test_garbled_and_dropped_index_lines(tmp_path, capsys, caplog):
    """Under --skip-corrupt the .rec is the truth: the records of a garbled and a dropped line are
    recovered (keyed from their neighbours), the bad line is listed."""
    items = make_rec(tmp_path / "rec")
    idx = tmp_path / "rec" / "train.idx"
    lines = idx.read_text().splitlines(keepends=True)
    lines[7] = "7\t12#4\n"
    del lines[3]
    idx.write_text("".join(lines))
    args = ["--src", str(tmp_path / "rec"), "--per-shard", "5"]
    assert shard.main([*args, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "train.idx (line 7): expected '<key>\\t<offset>' integers" in err
    assert shard.main([*args, "--out", str(tmp_path / "out"), "--skip-corrupt"]) == 0
    assert _sharded(tmp_path / "out") == _expected(items, range(1, 25))
    rejected = read_table(tmp_path / "out" / "rejected.parquet", REJECTED_SCHEMA).to_pylist()
    assert [(r["index"], r["where"]) for r in rejected] == [(None, "line 7")]
    assert "recovered 2 record(s)" in caplog.text


def test_short_last_identity_record_is_warned_and_listed(tmp_path, caplog):
    items = make_rec(tmp_path / "rec")
    index = _index(tmp_path / "rec")
    rec = tmp_path / "rec" / "train.rec"
    rec.write_bytes(rec.read_bytes()[:index[28] + 12])  # the last (metadata) record cut short
    for flags in ([], ["--skip-corrupt"]):
        out = tmp_path / f"out{len(flags)}"
        assert shard.main(["--src", str(tmp_path / "rec"), "--out", str(out), "--per-shard", "5", *flags]) == 0
        assert ("ends inside a record" if flags else "the last record (key 28") in caplog.text
        caplog.clear()
        assert _sharded(out) == _expected(items, range(1, 25))
        rejected = read_table(out / "rejected.parquet", REJECTED_SCHEMA).to_pylist()
        assert [(r["index"], r["shard"]) for r in rejected] == [(28, None)]


def test_image_folder_as_people_keep_it(tmp_path, capsys):
    """Upper-case extensions, stray non-image files, an empty identity, symlinked images and a truncated
    JPEG: strict refuses naming --skip-corrupt; --skip-corrupt shards every good image and lists the rest."""
    root, elsewhere = tmp_path / "faces", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kept.jpg").write_bytes(tiny_image(40))
    good = {"amy/A.JPG": tiny_image(1), "amy/b.Jpeg": tiny_image(2), "bob/c.PNG": tiny_image(3, fmt="PNG"),
            "bob/d.jpg": tiny_image(4), "eve/e.jpg": tiny_image(5)}
    for rel, data in {**good, "amy/notes.txt": b"taken 2019", "bob/Thumbs.db": b"\0" * 64,
                      "eve/half.jpg": TRUNCATED, "eve/desktop.ini": b"[x]"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "dan").mkdir()  # an empty identity
    (root / "eve" / "link.jpg").symlink_to(elsewhere / "kept.jpg")
    (root / "eve" / ".DS_Store").write_bytes(b"hidden")
    good["eve/link.jpg"] = tiny_image(40)
    out = tmp_path / "out"
    args = ["--src", str(root), "--out", str(out), "--decode-check", "1"]
    assert shard.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--skip-corrupt" in err and str(root / "amy" / "notes.txt") in err
    assert shard.main([*args, "--skip-corrupt"]) == 0
    printed = capsys.readouterr().out
    rows = read_samples(out).to_pylist()
    labels = {"amy": 0, "bob": 1, "eve": 2}  # dan holds no images: no label
    want = sorted((labels[rel.split("/")[0]], hashlib.sha256(data).hexdigest()) for rel, data in good.items())
    assert sorted((r["label"], r["sha256"]) for r in rows) == want
    rejected = {Path(r["source"]).name: (r["reason"].split(" (")[0], r["shard"])
                for r in read_table(out / "rejected.parquet", REJECTED_SCHEMA).to_pylist()}
    assert rejected == {"notes.txt": ("not an image", None), "Thumbs.db": ("not an image", None),
                        "desktop.ini": ("not an image", None), "dan": ("identity folder holds no images", None),
                        "half.jpg": ("image does not decode: image file is truncated", rejected["half.jpg"][1])}
    assert rejected["half.jpg"][1] is not None  # refused while sharding: it has a shard
    assert printed.splitlines()[-1] == (f"skipped 3 non-image file(s) (reason 'not an image' in "
                                        f"{out / 'rejected.parquet'})")


def test_the_progress_bar_counts_records_against_the_planned_total(tmp_path, monkeypatch, capsys):
    """The bar (drawn only on a terminal; forced here into a buffer) counts the records read, stored and
    rejected, out of the source's images or the first --limit."""
    drawn = io.StringIO()
    monkeypatch.setattr(shard, "tqdm", lambda **kw: tqdm_module.tqdm(**{**kw, "disable": False, "file": drawn}))
    make_rec(tmp_path / "rec")
    assert shard.main(["--src", str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--per-shard", "5"]) == 0
    assert "24/24" in drawn.getvalue() and "img" in drawn.getvalue()
    drawn.seek(0), drawn.truncate()
    assert shard.main(["--src", str(tmp_path / "rec"), "--out", str(tmp_path / "out10"), "--per-shard", "4",
                       "--limit", "10"]) == 0
    assert "10/10" in drawn.getvalue()


def test_shard_command_hands_one_policy_to_the_source_and_the_writer(monkeypatch, tmp_path):
    seen = {}

    def fake_open(path, *, errors, **options):
        seen["source"] = errors
        raise DataError(path, "", "stop here")

    monkeypatch.setattr("fr_data.ingest.sources.open_source", fake_open)
    monkeypatch.setattr(shard, "_options", lambda args, real=shard._options: seen.setdefault("writer", real(args)))
    (tmp_path / "src").mkdir()
    assert shard.main(["--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--skip-corrupt"]) == 2
    assert seen["source"] is seen["writer"].errors == ErrorPolicy.SKIP
