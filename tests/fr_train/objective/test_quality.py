"""The SDD-FIQA regressor: the regression term against a numpy restatement of the Huber loss on the label
scale; end to end on tiny shards, it learns a planted quality signal through the ordinary trainer (head:
null + the quality term), resumes exactly, and loads back as one images -> quality module."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import torch
from scipy.stats import spearmanr

from fr_data.folders.run_folder import MINED_SAMPLES_SCHEMA
from fr_data.io.config import deep_merge
from fr_data.io.errors import ConfigError
from fr_data.io.parquet import write_table
from fr_data.loading.decode import decode_face
from fr_train.config import load_train_config
from fr_train.objective import Batch
from fr_train.objective.quality import QualityModel, QualityRegression, load_quality_model
from fr_train.trainer import run
from tests.fr_train.data.builders import face_jpeg, make_tiny_data, mined_samples
from tests.repo import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

CONFIG = ROOT / "configs" / "synth_tiny.yaml"


def _huber(error: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss: quadratic within delta, linear beyond (Huber 1964)."""
    a = np.abs(error)
    return np.where(a <= delta, 0.5 * a ** 2, delta * (a - 0.5 * delta))


def _batch(embeddings: torch.Tensor, targets: list[float]) -> Batch:
    return Batch(embeddings, torch.zeros(len(targets), dtype=torch.long),
                 targets=torch.tensor(targets, dtype=torch.float32))


def test_loss_is_the_huber_loss_of_the_labels_over_delta_times_scale_and_skips_nan():
    torch.manual_seed(0)
    loss = QualityRegression(4, scale=100.0, delta=5.0)
    x = torch.randn(5, 4)
    targets = [10.0, 90.0, float("nan"), 50.0, 52.0]
    out = loss.batch_loss(_batch(x, targets))
    predicted = loss(x).detach().numpy().astype(np.float64)  # in label units
    known = ~np.isnan(targets)
    error = predicted[known] - np.asarray(targets)[known]
    want = _huber(error, 5.0).mean() / (5.0 * 100.0)
    assert float(out.loss.detach()) == pytest.approx(want, rel=1e-5)
    assert float(out.parts["mae"]) == pytest.approx(np.abs(error).mean(), rel=1e-5)


def test_a_batch_without_labels_gives_zero_with_a_graph():
    loss = QualityRegression(3)
    x = torch.randn(2, 3, requires_grad=True)
    out = loss.batch_loss(_batch(x, [float("nan"), float("nan")]))
    out.loss.backward()
    assert float(out.loss.detach()) == 0.0 and x.grad is not None and float(x.grad.abs().sum()) == 0.0


def test_missing_targets_name_the_loss():
    with pytest.raises(ValueError, match="QualityRegression needs batch.targets"):
        QualityRegression(3).batch_loss(Batch(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long)))



def planted(source_index: int) -> float:
    """The planted quality: where the image's stripe sits (``face_jpeg`` puts it at column 7i mod 104)."""
    return 100.0 * ((7 * source_index) % 104) / 104


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Tiny shards (6 classes x 6 images) whose run holds the planted quality as ``quality_sdd``."""
    data = make_tiny_data(tmp_path_factory.mktemp("quality"))
    index = {key: 6 * c + i for (c, i), key in data.key.items()}
    table = mined_samples(data)
    targets = pa.array([planted(index[k]) for k in table.column("key").to_pylist()], pa.float32())
    table = table.set_column(table.schema.get_field_index("quality_sdd"), "quality_sdd", targets)
    write_table(table, data.run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    return data


def quality_config(data, output, **sections):
    base = {"data": {"shards": str(data.shards), "run": str(data.run), "batch_size": 8, "num_workers": 0,
                     "augment": {"flip_p": 0.0}},
            "model": {"embedding_size": 16},
            "objective": {"head": None, "terms": {"quality": {}}},
            "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.0},
            "schedule": {"name": "cosine", "warmup_steps": 5},
            "train": {"max_steps": 60, "log_every": 5, "ckpt_every": 0, "output": str(output),
                      "progress": False}}
    return load_train_config(CONFIG, deep_merge(base, sections))


def test_the_regressor_learns_a_planted_quality_signal(data, tmp_path):
    result = run(quality_config(data, tmp_path / "q"))
    assert all(math.isfinite(r["quality/mae"]) for r in result.records if "quality/mae" in r)
    model, spec = load_quality_model(tmp_path / "q")  # the run folder: its latest checkpoint
    assert isinstance(model, QualityModel) and spec["checkpoint"].endswith("step-00000060")
    images = torch.stack([decode_face(face_jpeg(c, 6 * c + i)) for (c, i) in data.key])
    with torch.no_grad():
        predicted = model(images).numpy()
    want = [planted(6 * c + i) for (c, i) in data.key]
    assert predicted.shape == (36,) and spearmanr(predicted, want)[0] > 0.85
    constant = np.abs(np.asarray(want) - np.median(want)).mean()  # the best constant guess
    assert np.abs(predicted - np.asarray(want)).mean() < 0.7 * constant


def test_a_resumed_regressor_run_repeats_the_uninterrupted_one(data, tmp_path):
    cfg = quality_config(data, tmp_path / "full", train={"max_steps": 6, "log_every": 1})
    full = [r["loss"] for r in run(cfg).records if "loss" in r]
    cut = quality_config(data, tmp_path / "cut", train={"max_steps": 6, "log_every": 1})
    first = [r["loss"] for r in run(cut, stop_after=3).records if "loss" in r]
    rest = [r["loss"] for r in run(cut, resume=True).records if "loss" in r]
    assert first + rest == full and all(math.isfinite(v) for v in full)


def test_load_quality_model_errors(data, tmp_path):
    with pytest.raises(ConfigError, match="not a checkpoint folder"):
        load_quality_model(tmp_path / "nothing")
    cfg = quality_config(data, tmp_path / "arc", objective={"head": {"name": "arcface"}, "terms": {"quality": None}},
                         schedule={"warmup_steps": 0}, train={"max_steps": 1})
    run(cfg)
    with pytest.raises(ConfigError, match="not a quality regressor"):
        load_quality_model(tmp_path / "arc")
