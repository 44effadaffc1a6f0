"""``hardmine embed --model FILE.onnx``: the project's own backbones exported to ONNX (with and without the
normalisation inside the graph, in RGB and BGR) give the torch path's embeddings; broken graphs are
refused with one line naming the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fr_data.folders.embeddings_folder import EMBEDDINGS_FILE, RUN_FILE, read_index
from fr_train.models import get_model
from hardmine.cli import embed
from tests.fr_data.embed.helpers import make_shards
from tests.repo import ROOT

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

EMB_SIZE = 32


class Fed(nn.Module):
    """A backbone behind an input convention: ``convert`` maps the graph's input to the backbone's."""

    def __init__(self, backbone: nn.Module, convention: str):
        super().__init__()
        self.backbone, self.convention = backbone, convention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.convention == "raw":  # raw pixels, normalised inside: a leading Sub and Mul
            x = (x - 127.5) * (1 / 127.5)
        elif self.convention == "unit":  # pixels / 255: Mul and Sub inside, which the detection mistakes
            x = x * 2.0 - 1.0
        elif self.convention == "bgr":  # the pipeline's normalisation, channels in BGR order
            x = x[:, [2, 1, 0]]
        return self.backbone(x)


def export(backbone: nn.Module, convention: str, path: Path) -> Path:
    torch.onnx.export(Fed(backbone, convention).eval(), (torch.zeros(2, 3, 112, 112),), str(path),
                      input_names=["data"], output_names=["fc1"], opset_version=17, dynamo=False,
                      dynamic_axes={"data": {0: "batch"}, "fc1": {0: "batch"}})
    return path


def run_embed(shards: Path, out: Path, *extra: str) -> int:
    return embed.main(["--shards", str(shards), "--out", str(out), "--device", "cpu", "--workers", "0",
                       "--batch-size", "4", "--no-progress", *extra])


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    make_shards(folder, n=6, n_shards=2)
    return folder


@pytest.fixture(scope="module", params=["iresnet18", "tiny"])
def torch_path(request, shards, tmp_path_factory) -> tuple[str, nn.Module, np.ndarray]:
    """A randomly initialised backbone, its checkpoint embedded through the torch path."""
    name = request.param
    with torch.random.fork_rng():
        torch.manual_seed(5)
        backbone = get_model(name, embedding_size=EMB_SIZE).eval()
    folder = tmp_path_factory.mktemp(name)
    torch.save(backbone.state_dict(), folder / "backbone.pth")
    assert run_embed(shards, folder / "EMB", "--model", name, "--embedding-size", str(EMB_SIZE),
                     "--checkpoint", str(folder / "backbone.pth")) == 0
    return name, backbone, np.load(folder / "EMB" / EMBEDDINGS_FILE).astype(np.float32)


@pytest.mark.parametrize("convention, flags, in_graph", [
    ("plain", [], False),
    ("raw", [], True),
    ("bgr", ["--channel-order", "bgr"], False),
    ("unit", ["--input-std", "255"], True),
])
def test_onnx_export_gives_the_torch_embeddings(shards, torch_path, tmp_path, convention, flags, in_graph):
    name, backbone, want = torch_path
    path = export(backbone, convention, tmp_path / f"{name}-{convention}.onnx")
    out = tmp_path / "EMB"
    assert run_embed(shards, out, "--model", str(path), *flags) == 0
    got = np.load(out / EMBEDDINGS_FILE).astype(np.float32)
    cosines = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosines.min() >= 0.9999, cosines
    assert read_index(out).column("key").to_pylist() == [f"{i:06d}" for i in range(6)]
    record = json.loads((out / RUN_FILE).read_text())["spec"]["onnx"]
    assert record["file"] == str(path) and record["normalisation_in_graph"] is in_graph
    assert record["input_name"] == "data" and record["input_shape"] == ["batch", 3, 112, 112]
    assert record["provider"] == "CPUExecutionProvider"
    assert record["channel_order"] == ("bgr" if convention == "bgr" else "rgb")
    assert (record["mean"], record["std"]) == {"plain": (127.5, 127.5), "raw": (0.0, 1.0), "bgr": (127.5, 127.5),
                                               "unit": (0.0, 255.0)}[convention]
    assert record["mean_std_source"] == ("override" if convention == "unit" else "detected")


def test_without_the_override_a_misdetected_graph_gives_other_embeddings(shards, torch_path, tmp_path):
    """The ``unit`` graph's leading Mul/Sub looks like built-in normalisation: raw pixels are wrong there,
    which is why ``--input-std`` exists (the check above fails without it)."""
    name, backbone, want = torch_path
    path = export(backbone, "unit", tmp_path / f"{name}-unit.onnx")
    assert run_embed(shards, tmp_path / "EMB", "--model", str(path)) == 0
    got = np.load(tmp_path / "EMB" / EMBEDDINGS_FILE).astype(np.float32)
    cosines = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosines.min() < 0.9999


def test_a_broken_onnx_file_is_one_line_exit_2_and_nothing_published(shards, tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage" * 50)
    out = tmp_path / "EMB"
    proc = subprocess.run([sys.executable, "-m", "hardmine", "embed", "--shards", str(shards), "--model",
                           str(path), "--out", str(out), "--device", "cpu", "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hardmine embed: error: ") and str(path) in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".EMB*partial"))


@pytest.mark.parametrize("flags, fragment", [(["--input-std", "0"], "--input-std: must be a number > 0"),
                                             (["--input-mean", "nan"], "--input-mean: must be a finite number"),
                                             (["--channel-order", "rbg"], "--channel-order: invalid choice")])
def test_onnx_flags_are_checked_while_parsing(shards, tmp_path, capsys, flags, fragment):
    with pytest.raises(SystemExit) as stop:
        run_embed(shards, tmp_path / "EMB", "--model", "x.onnx", *flags)
    assert stop.value.code == 2 and fragment in capsys.readouterr().err
