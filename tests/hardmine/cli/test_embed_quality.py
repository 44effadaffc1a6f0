"""``embed --quality-model`` -> the index's quality column -> mining's samples.parquet and difficulty switch,
and the command-line errors of both (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fr_data.folders.embeddings_folder import RUN_FILE, read_index
from fr_data.loading.decode import decode_face
from fr_data.mining.difficulty import difficulty_score
from fr_train.config import load_train_config, save_train_config
from fr_train.models import get_model
from fr_train.objective.quality import QualityRegression, load_quality_model
from hardmine.cli import embed, mine
from tests.fr_data.embed.helpers import make_shards
from tests.repo import ROOT

TINY = "tests.fr_data.embed.helpers:make_tiny"


def write_quality_checkpoint(folder: Path, embedding_size: int = 8) -> Path:
    """A checkpoint folder as a quality run leaves it: config.yaml, model.pt, objective.pt (terms.quality.*)."""
    folder.mkdir(parents=True)
    cfg = load_train_config(ROOT / "configs" / "sdd_fiqa_synth.yaml",
                            {"model": {"embedding_size": embedding_size, "weights": None}})
    save_train_config(cfg, folder / "config.yaml")
    with torch.random.fork_rng():
        torch.manual_seed(5)
        backbone = get_model("tiny", embedding_size=embedding_size).eval()
        head = QualityRegression(embedding_size, scale=100.0)
    torch.save(backbone.state_dict(), folder / "model.pt")
    torch.save({f"terms.quality.{k}": v for k, v in head.state_dict().items()}, folder / "objective.pt")
    return folder


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Shards of 12 images (3 labels), embedded with a quality model; the expected scores per key."""
    tmp = tmp_path_factory.mktemp("quality")
    samples = make_shards(tmp / "shards", n=12, n_shards=2)
    ckpt = write_quality_checkpoint(tmp / "ckpt")
    out = tmp / "EMB"
    argv = ["--shards", str(tmp / "shards"), "--model", TINY, "--out", str(out), "--device", "cpu",
            "--workers", "0", "--batch-size", "5", "--no-progress", "--quality-model", str(ckpt)]
    assert embed.main(argv) == 0
    model, _ = load_quality_model(ckpt)
    with torch.no_grad():
        want = model(torch.stack([decode_face(data) for _, _, data in samples])).numpy()
    return tmp, out, dict(zip([k for k, _, _ in samples], want))


def test_embed_writes_the_quality_models_score_of_every_image(scored):
    _, out, want = scored
    index = read_index(out)
    got = dict(zip(index.column("key").to_pylist(), index.column("quality").to_pylist()))
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-4, atol=1e-4)
    assert json.loads((out / RUN_FILE).read_text())["quality"]["model"] == "tiny"


def test_mining_carries_the_column_and_uses_it_only_when_switched_on(scored, tmp_path):
    tmp, out, want = scored
    assert mine.main(["--embeddings", str(out), "--out", str(tmp_path / "off"), "--quiet"]) == 0
    off = pq.read_table(tmp_path / "off" / "samples.parquet")
    np.testing.assert_allclose(off.column("quality").to_numpy(), [want[k] for k in off.column("key").to_pylist()],
                               rtol=1e-4, atol=1e-4)
    config = tmp_path / "q.yaml"
    config.write_text(f"base: {ROOT / 'configs' / 'mining.yaml'}\ndifficulty: {{quality_weight: 2.0}}\n")
    assert mine.main(["--embeddings", str(out), "--out", str(tmp_path / "on"), "--config", str(config),
                      "--quiet"]) == 0
    on = pq.read_table(tmp_path / "on" / "samples.parquet")
    column = {name: on.column(name).to_numpy(zero_copy_only=False).astype(float)
              for name in ("quality_cr", "resolution", "quality", "difficulty")}
    expected = difficulty_score(column["quality_cr"], column["resolution"], 1.0, column["quality"], 2.0)
    np.testing.assert_allclose(column["difficulty"], expected, rtol=1e-6, equal_nan=True)
    assert not np.allclose(column["difficulty"], off.column("difficulty").to_numpy(zero_copy_only=False),
                           equal_nan=True)


def test_folders_without_quality_read_and_mine_as_before(scored, tmp_path, capsys):
    tmp = scored[0]
    plain = tmp_path / "EMB"
    argv = ["--shards", str(tmp / "shards"), "--model", TINY, "--out", str(plain), "--device", "cpu",
            "--workers", "0", "--no-progress"]
    assert embed.main(argv) == 0
    assert "quality" not in read_index(plain).column_names
    assert mine.main(["--embeddings", str(plain), "--out", str(tmp_path / "RUN"), "--quiet"]) == 0
    assert "quality" not in pq.read_schema(tmp_path / "RUN" / "samples.parquet").names
    config = tmp_path / "q.yaml"
    config.write_text("difficulty: {quality_weight: 1.0}\n")
    assert mine.main(["--embeddings", str(plain), "--out", str(tmp_path / "RUN2"), "--config", str(config),
                      "--quiet"]) == 2
    assert "index.parquet has no quality column (embed with --quality-model)" in capsys.readouterr().err


def test_bad_quality_models_exit_2_with_one_line(scored, tmp_path, capsys):
    tmp = scored[0]
    recognition = write_quality_checkpoint(tmp_path / "arc")  # then made a plain recognition run's checkpoint
    save_train_config(load_train_config(ROOT / "configs" / "synth_tiny.yaml", {"model": {"embedding_size": 8}}),
                      recognition / "config.yaml")
    mismatched = write_quality_checkpoint(tmp_path / "wide")
    torch.save({"terms.quality.head.weight": torch.zeros(1, 3), "terms.quality.head.bias": torch.zeros(1),
                "terms.quality.scale": torch.tensor(100.0)}, mismatched / "objective.pt")
    cases = ((tmp_path / "missing", "does not exist"), (recognition, "not a quality regressor"),
             (mismatched, "objective.pt: does not match the quality model's QualityRegression"))
    for model, message in cases:
        argv = ["--shards", str(tmp / "shards"), "--model", TINY, "--out", str(tmp_path / "E"), "--device", "cpu",
                "--no-progress", "--quality-model", str(model)]
        try:
            code = embed.main(argv)
        except SystemExit as stop:  # a missing path is refused while parsing the command line
            code = stop.code
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1 and not (tmp_path / "E").exists(), err
