"""``hardmine overlap`` end to end on a tiny synthetic set (an untrained ``tiny`` backbone saved as a
checkpoint: the plumbing, not the precision; that is tests/fr_data/overlap/test_audit.py), and its one-line
refusals of bad input."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import torch

from fr_data.folders import overlap_folder as of
from fr_train.models import get_model
from hardmine.cli import embed, overlap, query, shard, synth


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("overlap")
    assert synth.main(["--out", str(root / "synth"), "--identities", "8", "--images-per-identity", "4",
                       "--seed", "1", "--holdout-identities", "2", "--pairs", "0", "--eval-out",
                       str(root / "EVAL"), "--overlap-identities", "2", "--leaked-images", "2",
                       "--disjoint-identities", "2"]) == 0
    assert shard.main(["--src", str(root / "synth"), "--out", str(root / "shards")]) == 0
    torch.manual_seed(0)
    torch.save(get_model("tiny").state_dict(), root / "tiny.pt")
    assert embed.main(["--shards", str(root / "shards"), "--model", "tiny", "--checkpoint", str(root / "tiny.pt"),
                       "--out", str(root / "emb"), "--workers", "0", "--no-progress"]) == 0
    return root


def test_pack_and_image_folder_and_embeddings_folder(made, tmp_path, capsys):
    """The exact copy is found by its bytes in the pack and the image folder; the training set's own
    embeddings given as an evaluation set overlap every class."""
    out = tmp_path / "OUT"
    assert overlap.main(["--embeddings", str(made / "emb"), "--eval", str(made / "EVAL" / "overlap_eval.bin"),
                         str(made / "EVAL" / "images"), str(made / "emb"), "--out", str(out),
                         "--threshold", "0.9"]) == 0
    assert "wrote" in capsys.readouterr().out
    truth = pq.read_table(made / "EVAL" / "truth.parquet").to_pylist()
    exact = next(r for r in truth if r["copy_kind"] == "exact")
    rows = of.read_overlap(out).to_pylist()
    bytes_hits = {(r["eval_set"], r["eval_key"], r["train_key"]) for r in rows if r["same_bytes"]}
    train_key = f"{exact['train_index']:09d}"
    assert ("overlap_eval.bin", str(exact["eval_index"]), train_key) in bytes_hits
    assert ("images", exact["eval_path"].removeprefix("images/"), train_key) in bytes_hits
    info = json.loads((out / of.INFO_FILE).read_text())
    assert info["model"]["spec"]["model"] == "tiny" and info["thresholds"]["identity"]["value"] == 0.9
    assert [s["kind"] for s in info["inputs"]["eval_sets"]] == ["bin", "images", "embeddings"]
    # every stage timed (the images of two sets embedded in one embed stage)
    assert set(info["seconds"]["stages"]) == {"open", "centres", "embed", "identity_threshold",
                                              "duplicate_threshold", "identity_search", "leak_search", "write"}
    assert set(info["seconds"]["cpu"]) == set(info["seconds"]["stages"])
    assert info["false_match_rate"]["fpr"] is None  # an explicit --threshold states no rate
    assert "ANY of the C classes" in " ".join(overlap.build_parser().format_help().split())
    # every training class's own images match it (cos to its centre > 0.9 for a random tiny backbone)
    labels = set(pq.read_table(made / "emb" / "index.parquet").column("label").to_pylist())
    assert {r["label"] for r in of.read_classes(out).to_pylist() if r["eval_set"] == "emb"} == labels
    assert sorted(p.name for p in out.iterdir()) == sorted([of.OVERLAP_FILE, of.CLASSES_FILE, of.INFO_FILE])
    # the DuckDB views of hardmine query --overlap
    (tmp_path / "RUN").mkdir()
    capsys.readouterr()
    sql = ("SELECT count(*) AS n FROM overlap JOIN overlap_classes USING (label, eval_set) "
           "WHERE eval_set = 'emb' AND match = 'identity'")
    assert query.main([str(tmp_path / "RUN"), sql, "--overlap", str(out)]) == 0
    want = sum(r["eval_set"] == "emb" and r["match"] == "identity" for r in rows)
    assert capsys.readouterr().out.split()[2] == str(want)


def _fails(args, capsys, out, *names):
    assert overlap.main([*args, "--out", str(out), "--threshold", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hardmine overlap: error:")
    for name in names:
        assert name in err
    assert not out.exists()
    return err


def test_bad_input_one_line_nothing_published(made, tmp_path, capsys):
    emb = ["--embeddings", str(made / "emb")]
    not_a_pack = tmp_path / "lfw.bin"
    not_a_pack.write_bytes(b"not a pickle")
    _fails([*emb, "--eval", str(not_a_pack)], capsys, tmp_path / "A", "lfw.bin")
    (tmp_path / "empty").mkdir()
    _fails([*emb, "--eval", str(tmp_path / "empty")], capsys, tmp_path / "B", "empty", "no images")
    _fails([*emb, "--eval", str(made / "EVAL" / "images"), "--model", "iresnet50"], capsys, tmp_path / "C",
           "iresnet50", "differs")


def test_other_models_embeddings_and_broken_onnx_are_refused(made, tmp_path, capsys):
    other = tmp_path / "other_emb"
    shutil.copytree(made / "emb", other)
    info = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**info, "spec": {**info["spec"], "model": "iresnet18"}}))
    _fails(["--embeddings", str(made / "emb"), "--eval", str(other)], capsys, tmp_path / "A", "other_emb")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x01garbage")
    from fr_data.io.hashing import file_sha256

    onnx = {"sha256": file_sha256(broken), "mean": 127.5, "std": 127.5, "channel_order": "rgb"}
    (other / "run.json").write_text(json.dumps({**info, "spec": {"model": str(broken), "onnx": onnx}}))
    _fails(["--embeddings", str(other), "--eval", str(made / "EVAL" / "overlap_eval.bin")], capsys,
           tmp_path / "B", "broken.onnx")


def test_weights_that_cannot_be_rebuilt_are_refused(made, tmp_path, capsys):
    """Random weights (a registry name embedded without a checkpoint) and a checkpoint replaced at the
    recorded path would embed the evaluation images with other weights than the training set's."""
    random_emb = tmp_path / "random_emb"
    shutil.copytree(made / "emb", random_emb)
    info = json.loads((random_emb / "run.json").read_text())
    assert info["spec"]["checkpoint_sha256"]
    (random_emb / "run.json").write_text(json.dumps({**info, "spec": {"model": "tiny", "checkpoint": None}}))
    _fails(["--embeddings", str(random_emb), "--eval", str(made / "EVAL" / "images")], capsys, tmp_path / "A",
           "no checkpoint", "--checkpoint")
    moved = tmp_path / "moved_emb"
    shutil.copytree(made / "emb", moved)
    other_weights = tmp_path / "tiny.pt"
    torch.manual_seed(1)
    torch.save(get_model("tiny").state_dict(), other_weights)
    (moved / "run.json").write_text(json.dumps({**info, "spec": {**info["spec"], "checkpoint": str(other_weights)}}))
    _fails(["--embeddings", str(moved), "--eval", str(made / "EVAL" / "images")], capsys, tmp_path / "B",
           "tiny.pt", "sha256")
