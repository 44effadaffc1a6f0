"""``embed --pose`` -> the index's ``yaw`` / ``roll`` columns -> mining's pose bins (``pose_source:
landmarks``), and the one-line error when the pose extra is not installed."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from fr_data.embed.run import embed_folder
from fr_data.folders.embeddings_folder import RUN_FILE, read_index
from fr_data.loading.decode import decode_face
from hardmine.cli import embed, mine
from tests.fr_data.embed.helpers import make_shards, make_tiny

TINY = "tests.fr_data.embed.helpers:make_tiny"


def brightness_pose(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in estimator: yaw = 100 x the image's mean value, roll = its negative."""
    mean = images.float().mean(dim=(1, 2, 3)).numpy() * 100
    return mean.astype(np.float32), (-mean).astype(np.float32)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pose")
    return tmp, make_shards(tmp / "shards", n=9, n_shards=2)


def test_each_images_pose_lands_in_its_key_row_with_the_spec_in_run_json(shards, tmp_path):
    tmp, samples = shards
    torch.manual_seed(0)
    info = embed_folder(make_tiny(), tmp / "shards", tmp_path / "EMB", batch_size=4, progress=False,
                        pose=brightness_pose, pose_spec={"method": "brightness"})
    index = read_index(tmp_path / "EMB")
    want = {k: float(decode_face(d).mean()) * 100 for k, _, d in samples}
    got = dict(zip(index.column("key").to_pylist(), index.column("yaw").to_pylist()))
    assert got == pytest.approx(want, abs=1e-3)
    assert index.column("roll").to_pylist() == pytest.approx([-v for v in index.column("yaw").to_pylist()])
    assert info["pose"] == {"method": "brightness"}
    assert json.loads((tmp_path / "EMB" / RUN_FILE).read_text())["pose"] == {"method": "brightness"}


def test_without_pose_the_index_has_no_pose_columns(shards, tmp_path):
    tmp, _ = shards
    embed_folder(make_tiny(), tmp / "shards", tmp_path / "EMB", progress=False)
    assert not {"yaw", "roll"} & set(read_index(tmp_path / "EMB").column_names)


def test_pose_without_the_extra_is_one_line_and_exit_2(shards, tmp_path, capsys, monkeypatch):
    tmp, _ = shards
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib-bin were not installed
    argv = ["--shards", str(tmp / "shards"), "--model", TINY, "--out", str(tmp_path / "E"), "--device", "cpu",
            "--workers", "0", "--no-progress", "--pose"]
    assert embed.main(argv) == 2
    err = capsys.readouterr().err
    assert 'needs the optional pose extra: pip install "hardmine[pose]"' in err and err.count("\n") == 1
    assert not (tmp_path / "E").exists()


def test_embed_pose_with_dlib_feeds_the_pose_bins(shards, tmp_path):
    pytest.importorskip("dlib")
    from fr_data.embed.pose import model_path
    from fr_data.io.errors import ConfigError
    try:
        model_path()
    except ConfigError as exc:
        pytest.skip(str(exc))
    tmp, _ = shards
    out = tmp_path / "EMB"
    argv = ["--shards", str(tmp / "shards"), "--model", TINY, "--out", str(out), "--device", "cpu",
            "--workers", "0", "--no-progress", "--pose"]
    assert embed.main(argv) == 0
    index = read_index(out)
    for name in ("yaw", "roll"):
        assert np.isfinite(index.column(name).to_numpy()).all()
    spec = json.loads((out / RUN_FILE).read_text())["pose"]
    assert spec["model"].endswith("shape_predictor_5_face_landmarks.dat")
    assert mine.main(["--embeddings", str(out), "--out", str(tmp_path / "RUN"), "--quiet"]) == 0
    run = json.loads((tmp_path / "RUN" / "run.json").read_text())
    assert run["bins"]["pose_source"] == "landmarks"
