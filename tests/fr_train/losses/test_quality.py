"""The SDD-FIQA regression term against a numpy restatement of the Huber loss on the label scale."""

import numpy as np
import pytest
import torch

from fr_train.losses import QualityRegression
from fr_train.objective import Batch


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
