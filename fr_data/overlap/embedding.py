"""Embedding evaluation images exactly like the training embeddings folder EMB was embedded.

``EMB/run.json`` records the model (``spec``: name or file, checkpoint and its sha256, ``embedding_size``,
and for an ONNX file its sha256 and input convention) and whether the flip-sum was used. The evaluation images go through
the same decoding (:func:`fr_data.loading.decode.decode_face`), the same forward
(:func:`fr_data.embed.forward.embed_batch`: flip-sum, L2 normalisation) and the same model. A model named
on the command line must be the one recorded: vectors of two models are not comparable, so any
difference is refused before work starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fr_data.embed.forward import embed_batch
from fr_data.embed.model_spec import TORCHSCRIPT_SUFFIXES, NamedModelFactory, resolve_model
from fr_data.embed.onnx_model import OnnxInput, is_onnx_spec
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.hashing import file_sha256
from fr_data.loading.decode import decode_face
from fr_data.overlap.sources import EvalSet

__all__ = ["ModelRecord", "check_same_model", "embed_images", "load_recorded_model", "model_record"]

ModelRecord = dict[str, Any]


def model_record(run_info: dict[str, Any], where: str | os.PathLike) -> ModelRecord:
    """The model of an embeddings folder's ``run.json``: ``spec`` and ``flip`` (ConfigError if absent)."""
    spec = run_info.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
        raise ConfigError(f"{os.fspath(where)}: run.json records no model (spec.model): embed the training "
                          "set with hardmine embed, or pass evaluation embeddings made with the same model")
    return {"spec": spec, "flip": bool(run_info.get("flip", True))}


def _identity(spec: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two recorded models the same: the ONNX file's sha256, or name + checkpoint + size (the
    checkpoint by its sha256 where recorded, else by its real path: folders embedded before the sha256)."""
    onnx = spec.get("onnx")
    if isinstance(onnx, dict) and onnx.get("sha256"):
        return ("onnx", onnx["sha256"], onnx.get("mean"), onnx.get("std"), onnx.get("channel_order"))
    checkpoint = spec.get("checkpoint")
    weights = spec.get("checkpoint_sha256") or (os.path.realpath(checkpoint) if checkpoint else None)
    return ("model", spec.get("model"), weights, spec.get("embedding_size"))


def _random_weights(spec: dict[str, Any]) -> bool:
    """A registry name without a checkpoint: its weights were drawn at random when EMB was embedded and
    cannot be built again (a file or a ``package.module:factory`` brings its own weights)."""
    model = str(spec.get("model", ""))
    carries_weights = is_onnx_spec(model) or model.endswith(TORCHSCRIPT_SUFFIXES) or ":" in model
    return not carries_weights and not spec.get("checkpoint")


def check_same_model(recorded: ModelRecord, other: ModelRecord, emb: str | os.PathLike,
                     where: str | os.PathLike) -> None:
    """Refuse ``other`` (a command-line model or an evaluation embeddings folder) unless it is the model
    and flip setting recorded in ``emb``."""
    if _identity(recorded["spec"]) != _identity(other["spec"]) or recorded["flip"] != other["flip"]:
        raise ConfigError(f"{os.fspath(where)}: model {_describe(other)} differs from the model of "
                          f"{os.fspath(emb)} ({_describe(recorded)}); embeddings of two models cannot be compared")


def command_line_record(model: str, checkpoint: str | os.PathLike | None, recorded: ModelRecord) -> ModelRecord:
    """The record ``--model M --checkpoint C`` stands for (an ONNX file by its sha256; the flip and the
    ONNX input convention as recorded)."""
    spec: dict[str, Any] = {"model": model, "checkpoint": os.fspath(checkpoint) if checkpoint else None,
                            "embedding_size": recorded["spec"].get("embedding_size")}
    if checkpoint and recorded["spec"].get("checkpoint_sha256") and Path(checkpoint).is_file():
        spec["checkpoint_sha256"] = file_sha256(checkpoint)
    if is_onnx_spec(model):
        if not Path(model).is_file():
            raise ConfigError(f"ONNX model {model!r} does not exist")
        spec["onnx"] = {**(recorded["spec"].get("onnx") or {}), "sha256": file_sha256(model)}
    return {"spec": spec, "flip": recorded["flip"]}


def _describe(record: ModelRecord) -> str:
    spec = record["spec"]
    ckpt = f" + {spec['checkpoint']}" if spec.get("checkpoint") else ""
    return f"{spec.get('model')}{ckpt}{'' if record['flip'] else ' (no flip)'}"


def load_recorded_model(recorded: ModelRecord, named: NamedModelFactory | None,
                        device: torch.device) -> nn.Module:
    """Build the recorded model (an ONNX file is fed the recorded input convention; its file must still
    have the recorded sha256). ``named`` builds a registry name with the recorded ``embedding_size``."""
    spec = recorded["spec"]
    if _random_weights(spec):
        raise ConfigError(f"the embeddings were made with model {spec.get('model')!r} and no checkpoint "
                          "(randomly initialised weights, which cannot be built again to embed the evaluation "
                          "images): embed the training set with --checkpoint")
    checkpoint = spec.get("checkpoint")
    if spec.get("checkpoint_sha256") and checkpoint and Path(checkpoint).is_file() \
            and file_sha256(checkpoint) != spec["checkpoint_sha256"]:
        raise DataError(checkpoint, "", "sha256 differs from the one recorded when the training set was "
                        "embedded: not the same weights")
    onnx = spec.get("onnx")
    onnx_input = None
    if isinstance(onnx, dict):
        digest = file_sha256(spec["model"]) if Path(spec["model"]).is_file() else None
        if digest is not None and onnx.get("sha256") and digest != onnx["sha256"]:
            raise DataError(spec["model"], "", "sha256 differs from the one recorded when the training set "
                            "was embedded: not the same model")
        onnx_input = OnnxInput.from_record(onnx)
    return resolve_model(spec["model"], spec.get("checkpoint"), named=named, onnx_input=onnx_input,
                         device=device)


def embed_images(model: nn.Module, eval_set: EvalSet, *, flip: bool, device: torch.device,
                 batch_size: int = 64) -> np.ndarray:
    """Unit float32 rows ``(len(eval_set), D)``: each image decoded like the shards and embedded like EMB.

    Raises:
        DataError: an image cannot be decoded (names the evaluation set and the image's key).
    """
    assert eval_set.images is not None
    model = model.to(device).eval()
    out: list[np.ndarray] = []
    for start in range(0, len(eval_set.images), batch_size):
        batch = [_decode(eval_set, i) for i in range(start, min(start + batch_size, len(eval_set.images)))]
        result = embed_batch(model, torch.stack(batch).to(device), flip=flip)
        out.append(result.features.cpu().numpy().astype(np.float32))
    vectors = np.concatenate(out)
    if not np.isfinite(vectors).all():
        row = int(np.argmin(np.isfinite(vectors).all(axis=1)))
        raise DataError(eval_set.path, f"image {eval_set.keys[row]}", "the model gave a zero or non-finite feature")
    return vectors


def _decode(eval_set: EvalSet, i: int) -> torch.Tensor:
    try:
        return decode_face(eval_set.images[i])
    except Exception as exc:  # PIL raises many types for corrupt images
        raise DataError(eval_set.path, f"image {eval_set.keys[i]}",
                        f"cannot decode image: {type(exc).__name__}: {exc}") from None
