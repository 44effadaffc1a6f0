"""ONNX export in the InsightFace convention, checked against torch with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime  # noqa: F401  (a dev requirement: run_onnx needs it)
import pytest
import torch

from fr_train.checkpoints.export import export_onnx, max_onnx_error, run_onnx
from fr_train.models import get_model


def _io_signature(path):
    graph = onnx.load(str(path)).graph
    (inp,), (out,) = graph.input, graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    return inp.name, out.name, dims


@pytest.mark.parametrize(("name", "emb"), [("tiny", 64), ("mobilefacenet", 128)])
def test_export_matches_torch_with_dynamic_batch(tmp_path, name, emb):
    torch.manual_seed(0)
    model = get_model(name, embedding_size=emb)
    model.train()
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    assert model.training  # the export restores the training flag
    assert _io_signature(path) == ("data", "fc1", ["batch", 3, 112, 112])
    for batch in (1, 5):
        images = torch.randn(batch, 3, 112, 112)
        assert run_onnx(path, images.numpy()).shape == (batch, emb)
        assert max_onnx_error(model, path, images) < 1e-4


def test_iresnet18_export_matches_torch(tmp_path):
    torch.manual_seed(0)
    model = get_model("iresnet18")
    path = export_onnx(model, tmp_path / "r18.onnx")
    images = torch.randn(2, 3, 112, 112)
    model.eval()
    with torch.no_grad():
        expected = model(images).numpy()
    got = run_onnx(path, images.numpy())
    # an untrained IResNet has large activations in eval mode: compare relative to their scale
    assert np.max(np.abs(got - expected)) <= 1e-4 * np.max(np.abs(expected))
    assert _io_signature(path)[:2] == ("data", "fc1")


def test_export_writes_nothing_on_failure(tmp_path):
    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        export_onnx(Broken(), tmp_path / "broken.onnx")
    assert list(tmp_path.iterdir()) == []
