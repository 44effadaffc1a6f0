"""Tests of fr_data.embed.onnx_model on small hand-built graphs: the normalisation detection, the input
conversion, the refusals, the fixed batch size and the missing-extra error."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fr_data.embed.model_spec import resolve_model
from fr_data.embed.onnx_model import OnnxBackbone, OnnxInput, graph_normalises, load_onnx_model
from fr_data.io.errors import ConfigError, DataError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper


def scalar(name: str, value: float) -> TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, [], [value])


def save_graph(path: Path, nodes: list, *, inputs: list | None = None, outputs: list | None = None,
               init: list | None = None) -> Path:
    """Write a graph: by default input ``data`` (N, 3, 112, 112) and output ``fc1`` (N, 3)."""
    inputs = inputs or [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])]
    outputs = outputs or [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 3])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, init or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def mean_pool(source: str = "data", output: str = "fc1") -> list:
    """Nodes mapping ``source`` (N, 3, H, W) to its channel means ``output`` (N, 3)."""
    return [helper.make_node("GlobalAveragePool", [source], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], [output])]


def plain_graph(path: Path, batch: int | str = "N") -> Path:
    """Channel means of the input, no normalisation inside."""
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, 112, 112])]
    return save_graph(path, mean_pool(), inputs=inputs)


def normalising_graph(path: Path) -> Path:
    """``(x - 127.5) * 0.0078125`` then channel means: the layout of MXNet-converted recognisers."""
    nodes = [helper.make_node("Sub", ["data", "m"], ["centred"]),
             helper.make_node("Mul", ["centred", "s"], ["scaled"]), *mean_pool("scaled")]
    return save_graph(path, nodes, init=[scalar("m", 127.5), scalar("s", 0.0078125)])


def batch(seed: int = 0, n: int = 5) -> torch.Tensor:
    """Pipeline batches: RGB pixels normalised as (x - 127.5) / 127.5, one distinct value per channel."""
    pixels = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, 112, 112))).float()
    return (pixels - 127.5) / 127.5


def test_leading_sub_and_mul_are_detected_and_raw_pixels_fed(tmp_path):
    model = load_onnx_model(normalising_graph(tmp_path / "norm.onnx"))
    conv = model.convention
    assert (conv.mean, conv.std, conv.normalisation_in_graph, conv.source) == (0.0, 1.0, True, "detected")
    images = batch()
    pixels = images * 127.5 + 127.5
    np.testing.assert_allclose(model.graph_input(images), pixels.numpy(), atol=1e-4)
    want = ((pixels - 127.5) * 0.0078125).mean(dim=(2, 3))
    np.testing.assert_allclose(model(images).numpy(), want.numpy(), atol=1e-5)


def test_a_graph_without_leading_normalisation_is_fed_the_pipeline_batch(tmp_path):
    model = load_onnx_model(plain_graph(tmp_path / "plain.onnx"))
    assert (model.convention.mean, model.convention.std) == (127.5, 127.5)
    assert not model.convention.normalisation_in_graph
    images = batch()
    np.testing.assert_array_equal(model.graph_input(images), images.numpy())
    np.testing.assert_allclose(model(images).numpy(), images.mean(dim=(2, 3)).numpy(), atol=1e-5)


def test_a_sub_after_another_op_is_not_leading_normalisation():
    graph = helper.make_graph([helper.make_node("Relu", ["data"], ["r"]), helper.make_node("Sub", ["r", "m"], ["c"]),
                               helper.make_node("Mul", ["c", "s"], ["fc1"])], "g", [], [])
    assert not graph_normalises(graph, "data")
    cast_first = helper.make_graph([helper.make_node("Cast", ["data"], ["f"], to=TensorProto.FLOAT),
                                    helper.make_node("Sub", ["f", "m"], ["c"]),
                                    helper.make_node("Div", ["c", "s"], ["fc1"])], "g", [], [])
    assert graph_normalises(cast_first, "data")


def test_overrides_and_bgr_change_what_the_graph_is_fed(tmp_path):
    path = plain_graph(tmp_path / "plain.onnx")
    model = load_onnx_model(path, OnnxInput(mean=0.0, std=255.0, channel_order="bgr"))
    assert model.convention.source == "override"
    images = batch()
    want = (images * 127.5 + 127.5).flip(1) / 255.0
    np.testing.assert_allclose(model.graph_input(images), want.numpy(), atol=1e-6)
    record = model.describe()
    assert (record["mean"], record["std"], record["channel_order"]) == (0.0, 255.0, "bgr")
    assert record["input_name"] == "data" and record["input_shape"] == ["N", 3, 112, 112]
    assert record["provider"] == "CPUExecutionProvider" and len(record["sha256"]) == 64
    assert OnnxInput.from_record(record) == OnnxInput(0.0, 255.0, "bgr")


def test_a_fixed_batch_of_one_is_run_image_by_image(tmp_path):
    model = load_onnx_model(plain_graph(tmp_path / "one.onnx", batch=1))
    assert model.chunk == 1
    images = batch(n=4)
    np.testing.assert_allclose(model(images).numpy(), images.mean(dim=(2, 3)).numpy(), atol=1e-5)


@pytest.mark.parametrize("kind, fragment", [
    ("shape", "is not (N, 3, 112, 112)"),
    ("outputs", "2 outputs (fc1, extra)"),
    ("inputs", "2 inputs (data, other)"),
    ("broken", "not a loadable ONNX model"),
    ("rank3", "is not (N, dims)"),
])
def test_graphs_that_are_not_face_recognisers_are_refused(tmp_path, kind, fragment):
    path = tmp_path / f"{kind}.onnx"
    image = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])
    if kind == "shape":
        save_graph(path, mean_pool(),
                   inputs=[helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 64, 64])])
    elif kind == "outputs":
        save_graph(path, [*mean_pool(), helper.make_node("Identity", ["fc1"], ["extra"])],
                   outputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in ("fc1", "extra")])
    elif kind == "inputs":
        save_graph(path, [helper.make_node("Add", ["data", "other"], ["sum"]), *mean_pool("sum")],
                   inputs=[image, helper.make_tensor_value_info("other", TensorProto.FLOAT, ["N", 3, 112, 112])])
    elif kind == "rank3":
        save_graph(path, [helper.make_node("GlobalAveragePool", ["data"], ["fc1"])],
                   outputs=[helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 3, 1, 1])])
    else:
        path.write_bytes(b"this is not a protocol buffer \x00\xff" * 10)
    with pytest.raises(DataError) as err:
        load_onnx_model(path)
    message = str(err.value)
    assert str(path) in message and fragment in message and "\n" not in message


def test_missing_file_checkpoint_and_overrides_for_other_models_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model(str(tmp_path / "missing.onnx"))
    path = plain_graph(tmp_path / "plain.onnx")
    with pytest.raises(ConfigError, match="carries its own weights"):
        resolve_model(str(path), tmp_path / "backbone.pth")
    with pytest.raises(ConfigError, match="apply only to an ONNX model"):
        resolve_model("tests.fr_data.embed.helpers:make_tiny", onnx_input=OnnxInput(std=1.0))
    assert isinstance(resolve_model(str(path)), OnnxBackbone)


def test_the_missing_extra_is_one_clear_error(tmp_path, monkeypatch):
    path = plain_graph(tmp_path / "plain.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "hardmine\[onnx\]"'):
        load_onnx_model(path)
