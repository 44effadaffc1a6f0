"""A face recogniser stored as an ONNX graph (e.g. the InsightFace model zoo's ``w600k_r50.onnx``), run with
onnxruntime behind the ``nn.Module`` interface the embedding pipeline uses.

The pipeline hands every backbone the same batch: ``(B, 3, 112, 112)`` float32, RGB, normalised as
``(x - 127.5) / 127.5`` (:func:`fr_data.loading.decode.decode_face`), and sums the features of the image
and its mirror (:func:`fr_data.embed.forward.embed_batch`). :class:`OnnxBackbone` turns that batch back into
what the graph expects: pixel values ``x``, channels in the graph's order, then ``(x - mean) / std``.

ONNX files differ in where the normalisation happens. Graphs converted from MXNet begin with a ``Sub`` and a
``Mul`` node that subtract 127.5 and scale by 1/128 themselves and so take raw pixels; graphs exported from
PyTorch expect the caller to normalise. :func:`graph_normalises` tells them apart the way InsightFace's own
loader does, by looking for a leading Sub and Mul (or Div) at the start of the graph: the nodes that read
the image input first. Found: mean 0, std 1 (raw pixels); not found: mean 127.5, std 127.5. Either can be
overridden (``--input-mean``, ``--input-std``, ``--channel-order``), and :meth:`OnnxBackbone.describe`
records what was used in the embeddings folder's ``run.json``.

onnxruntime and onnx are the optional extra ``hardmine[onnx]``; the CUDA execution provider is used when
the model runs on a CUDA device and the installed onnxruntime offers it, the CPU provider otherwise.
ONNX files are protocol buffers: loading one runs no code from the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fr_data.io.errors import ConfigError, DataError, one_line
from fr_data.io.hashing import file_sha256

__all__ = ["CHANNEL_ORDERS", "ONNX_SUFFIX", "InputConvention", "OnnxBackbone", "OnnxInput",
           "graph_normalises", "is_onnx_spec", "load_onnx_model"]

ONNX_SUFFIX = ".onnx"
CHANNEL_ORDERS = ("rgb", "bgr")
FACE_SHAPE = (3, 112, 112)
#: the normalisation of the batches the pipeline hands a backbone (``decode_face``)
PIPELINE_MEAN = 127.5
PIPELINE_STD = 127.5
#: ops that may stand between the image input and its normalisation (type casts, no-ops)
_PASS_THROUGH = {"Cast", "Identity"}
_LEADING_LIMIT = 4
_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(frozen=True)
class OnnxInput:
    """Overrides of the input convention (None = detect from the graph / the default RGB)."""

    mean: float | None = None
    std: float | None = None
    channel_order: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OnnxInput:
        """The convention an embeddings folder recorded (``run.json`` ``spec.onnx``), to embed more images
        exactly the same way."""
        return cls(float(record["mean"]), float(record["std"]), str(record["channel_order"]))


@dataclass(frozen=True)
class InputConvention:
    """What the graph is fed: ``(pixels in channel_order - mean) / std``, and where mean/std came from."""

    mean: float
    std: float
    channel_order: str
    normalisation_in_graph: bool
    source: str  # "detected" or "override"


def is_onnx_spec(spec: str) -> bool:
    """Whether a model SPEC names an ONNX file (``*.onnx``, not ``package.module:factory``)."""
    return spec.lower().endswith(ONNX_SUFFIX) and ":" not in spec


def graph_normalises(graph: Any, input_name: str) -> bool:
    """Whether the graph normalises its own input: the nodes reading ``input_name`` first (through casts)
    are a Sub and a Mul or Div, before any other operation."""
    ops: set[str] = set()
    current = input_name
    for _ in range(_LEADING_LIMIT):
        readers = [node for node in graph.node if current in node.input]
        if len(readers) != 1 or readers[0].op_type not in _PASS_THROUGH | {"Sub", "Mul", "Div"}:
            break
        ops.add(readers[0].op_type)
        current = readers[0].output[0]
    return "Sub" in ops and bool(ops & {"Mul", "Div"})


class OnnxBackbone(nn.Module):
    """An onnxruntime session as a backbone: ``(B, 3, 112, 112)`` pipeline batches -> ``(B, D)`` features
    on the batch's device. It has no parameters; ``.to(device)`` and ``.eval()`` change nothing."""

    def __init__(self, path: Path, session: Any, convention: InputConvention, sha256: str):
        super().__init__()
        self.path = path
        self.session = session
        self.convention = convention
        self.sha256 = sha256
        meta = session.get_inputs()[0]
        self.input_name = meta.name
        self.input_shape = list(meta.shape)
        self.input_dtype = _INPUT_TYPES[meta.type]
        self.output_name = session.get_outputs()[0].name
        fixed = self.input_shape[0]
        self.chunk = fixed if isinstance(fixed, int) and fixed > 0 else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = self.graph_input(images)
        step = self.chunk or len(array)
        parts = [self._run(array[i:i + step]) for i in range(0, len(array), step)]
        return torch.from_numpy(np.concatenate(parts)).float().to(images.device)

    def graph_input(self, images: torch.Tensor) -> np.ndarray:
        """Pipeline batch -> the graph's input array (channel order, mean, std, dtype)."""
        conv = self.convention
        x = images.float()
        if conv.channel_order == "bgr":
            x = x.flip(1)
        if (conv.mean, conv.std) != (PIPELINE_MEAN, PIPELINE_STD):
            x = (x * PIPELINE_STD + PIPELINE_MEAN - conv.mean) / conv.std
        return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=self.input_dtype)

    def _run(self, array: np.ndarray) -> np.ndarray:
        try:
            out = self.session.run([self.output_name], {self.input_name: array})[0]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DataError(self.path, "", f"onnxruntime failed to run the graph: {one_line(exc)}") from exc
        if out.ndim != 2 or len(out) != len(array):
            raise DataError(self.path, f"output {self.output_name!r}",
                            f"gave shape {list(out.shape)} for {len(array)} images; expected (images, dims)")
        return out

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records: the file, its hash, the input and what it was fed, the provider."""
        conv = self.convention
        return {"file": os.fspath(self.path), "sha256": self.sha256, "input_name": self.input_name,
                "input_shape": self.input_shape, "output_name": self.output_name, "mean": conv.mean,
                "std": conv.std, "channel_order": conv.channel_order,
                "normalisation_in_graph": conv.normalisation_in_graph, "mean_std_source": conv.source,
                "provider": self.session.get_providers()[0]}


def load_onnx_model(path: str | os.PathLike, overrides: OnnxInput | None = None,
                    device: str | torch.device = "cpu") -> OnnxBackbone:
    """Open an ONNX face recogniser, check that it is one, and settle its input convention.

    Args:
        path: the ``.onnx`` file.
        overrides: mean, std and channel order to use instead of the detected ones.
        device: where the pipeline runs; a CUDA device selects onnxruntime's CUDA provider when present.

    Raises:
        ConfigError: the file does not exist, or the ``onnx`` extra is not installed.
        DataError: the file is not a loadable ONNX graph, or not one image input of shape
            ``(N, 3, 112, 112)`` and one output.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ONNX model {os.fspath(path)!r} does not exist")
    onnx, ort = _runtime(path)
    session = _session(ort, path, torch.device(device))
    _check_signature(path, session)
    try:
        graph = onnx.load(os.fspath(path), load_external_data=False).graph
    except Exception as exc:  # protobuf decode errors have no common base class
        raise DataError(path, "", f"not an ONNX model: {one_line(exc)}") from exc
    in_graph = graph_normalises(graph, session.get_inputs()[0].name)
    return OnnxBackbone(path, session, _convention(in_graph, overrides or OnnxInput()), file_sha256(path))


def _runtime(path: Path) -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(f"model {os.fspath(path)!r} is an ONNX file, which needs the optional extra: "
                          f"pip install \"hardmine[onnx]\" ({exc})") from exc
    return onnx, onnxruntime


def _session(ort: Any, path: Path, device: torch.device) -> Any:
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the one-line error below says what went wrong
    try:
        return ort.InferenceSession(os.fspath(path), options, providers=providers)
    except Exception as exc:  # InvalidProtobuf, Fail, ... share no public base class
        raise DataError(path, "", f"not a loadable ONNX model: {one_line(exc)}") from exc


def _check_signature(path: Path, session: Any) -> None:
    """One float image input ``(N, 3, 112, 112)`` (symbolic sizes allowed) and one output."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise DataError(path, "inputs", f"the graph has {len(inputs)} inputs "
                        f"({', '.join(i.name for i in inputs)}); a face recogniser takes one image batch")
    meta = inputs[0]
    shape = list(meta.shape)
    fixed_ok = len(shape) == 4 and all(not isinstance(d, int) or d == want
                                       for d, want in zip(shape[1:], FACE_SHAPE))
    if not fixed_ok:
        raise DataError(path, f"input {meta.name!r}",
                        f"shape {shape} is not (N, 3, 112, 112): expected aligned 112x112 RGB faces")
    if meta.type not in _INPUT_TYPES:
        raise DataError(path, f"input {meta.name!r}", f"type {meta.type} is not float or float16")
    if len(outputs) != 1:
        raise DataError(path, "outputs", f"the graph has {len(outputs)} outputs "
                        f"({', '.join(o.name for o in outputs)}); expected one embedding output")
    out_shape = list(outputs[0].shape)
    if len(out_shape) != 2:
        raise DataError(path, f"output {outputs[0].name!r}",
                        f"shape {out_shape} is not (N, dims): expected one embedding per image")


def _convention(in_graph: bool, overrides: OnnxInput) -> InputConvention:
    mean, std = (0.0, 1.0) if in_graph else (PIPELINE_MEAN, PIPELINE_STD)
    overridden = overrides.mean is not None or overrides.std is not None
    if overrides.std is not None and overrides.std == 0:
        raise ConfigError("--input-std must not be 0")
    order = overrides.channel_order or "rgb"
    if order not in CHANNEL_ORDERS:
        raise ConfigError(f"channel order {order!r} is not one of {', '.join(CHANNEL_ORDERS)}")
    return InputConvention(mean if overrides.mean is None else float(overrides.mean),
                           std if overrides.std is None else float(overrides.std), order, in_graph,
                           "override" if overridden else "detected")
