"""Head pose from dlib's 5-point landmarks: the geometry by hand, the clear error without the extra, and the
one real face the environment has (scikit-image's ``astronaut``), aligned, mirrored and rotated."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fr_data.embed import pose
from fr_data.io.errors import ConfigError

# InsightFace's 112 x 112 template: left eye, right eye, nose tip (the mouth corners are not used here)
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366]])


def points(nose_x: float = 0.0, angle: float = 0.0) -> np.ndarray:
    """dlib-ordered landmarks of eyes 40 pixels apart (centres at x = +-20), the nose ``nose_x`` pixels
    right of their midpoint, all rotated clockwise (y down) by ``angle`` degrees about the origin."""
    p = np.array([[25.0, 0], [15, 0], [-25, 0], [-15, 0], [nose_x, 20]])
    a = np.radians(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (p @ rot.T)[None]


# ---------------------------------------------------------------------------------------------- geometry
def test_a_centred_nose_is_frontal_and_level_eyes_have_no_roll():
    yaw, roll = pose.pose_from_landmarks(points())
    assert yaw[0] == pytest.approx(0.0, abs=1e-5) and roll[0] == pytest.approx(0.0, abs=1e-5)


def test_yaw_follows_the_nose_offset_through_the_documented_model():
    # offset / eye distance = 12 / 40 = 0.3 = NOSE_DEPTH, so tan(yaw) = 1: 45 degrees, nose to the right = +
    right, = pose.pose_from_landmarks(points(nose_x=0.3 * 40))[0]
    left, = pose.pose_from_landmarks(points(nose_x=-0.3 * 40))[0]
    assert pose.NOSE_DEPTH == 0.3
    assert right == pytest.approx(45.0, abs=1e-4) and left == pytest.approx(-45.0, abs=1e-4)


def test_roll_is_the_eye_line_angle_and_does_not_change_yaw():
    yaw, roll = pose.pose_from_landmarks(np.concatenate([points(6.0, 10.0), points(6.0, -10.0)]))
    assert roll.tolist() == pytest.approx([10.0, -10.0], abs=1e-4)
    assert yaw.tolist() == pytest.approx([np.degrees(np.arctan(6 / 40 / 0.3))] * 2, abs=1e-4)


def test_coinciding_eyes_give_nan_not_an_error():
    yaw, roll = pose.pose_from_landmarks(np.zeros((1, 5, 2)))
    assert np.isnan(yaw[0]) and np.isnan(roll[0])


def test_normalised_float_images_go_back_to_their_bytes():
    raw = torch.arange(0, 256, dtype=torch.uint8)[:48].reshape(1, 3, 4, 4)
    normalised = (raw.float() / 255 - 0.5) / 0.5
    back = pose.to_uint8_rgb(normalised)
    assert back.shape == (1, 4, 4, 3) and back.dtype == np.uint8
    assert (back == raw.permute(0, 2, 3, 1).numpy()).all()
    assert (pose.to_uint8_rgb(raw) == back).all()


# ------------------------------------------------------------------------------------ without the extra
def test_without_dlib_the_error_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib raises ImportError
    with pytest.raises(ConfigError) as err:
        pose.load_landmark_pose()
    assert 'pip install "hardmine[pose]"' in str(err.value) and "\n" not in str(err.value)


def test_without_the_model_package_the_error_names_the_file(monkeypatch):
    monkeypatch.setattr(pose.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="shape_predictor_5_face_landmarks.dat was not found"):
        pose.model_path()


# ------------------------------------------------------------------------------------ the one real face
def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (scale, rotation, shift) mapping ``src`` points onto ``dst``: 2 x 3."""
    a = np.array([[x, -y, 1, 0] for x, y in src] + [[y, x, 0, 1] for x, y in src])
    s, r, tx, ty = np.linalg.lstsq(a, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)[0]
    return np.array([[s, -r, tx], [r, s, ty]])


@pytest.fixture(scope="module")
def astronaut():
    """The astronaut's face aligned to the InsightFace template (112 x 112 uint8 RGB), and the estimator.

    dlib's detector and 5-point model find the landmarks on the full image; eye centres and the nose
    bottom are mapped onto the template's eyes and nose by a similarity transform."""
    dlib = pytest.importorskip("dlib")
    data = pytest.importorskip("skimage.data")
    try:
        estimator = pose.load_landmark_pose()
    except ConfigError as exc:
        pytest.skip(str(exc))
    image = data.astronaut()
    box = max(dlib.get_frontal_face_detector()(image, 1), key=lambda r: r.area())
    p = np.array([(q.x, q.y) for q in estimator._predictor(image, box).parts()], float)
    src = np.array([p[2:4].mean(0), p[0:2].mean(0), p[4]])
    forward = np.vstack([_similarity(src, TEMPLATE), [0, 0, 1]])
    inverse = np.linalg.inv(forward)[:2].ravel()  # PIL maps output pixels back to input pixels
    crop = Image.fromarray(image).transform((112, 112), Image.AFFINE, tuple(inverse), Image.BILINEAR)
    return np.asarray(crop), estimator


def _estimate(estimator, *images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return estimator(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2))


def test_the_real_face_is_frontal_and_its_mirror_flips_the_yaw_sign(astronaut):
    crop, estimator = astronaut
    (yaw, mirrored), _ = _estimate(estimator, crop, crop[:, ::-1])
    assert abs(yaw) < 15 and yaw != 0  # a nearly frontal portrait: the frontal bin
    assert np.sign(mirrored) == -np.sign(yaw)
    assert abs(abs(mirrored) - abs(yaw)) < 1.5


def test_a_rotated_real_face_reads_its_roll_and_the_mirror_flips_it(astronaut):
    crop, estimator = astronaut
    # PIL's angle: + = anticlockwise
    clockwise = np.asarray(Image.fromarray(crop).rotate(-15, resample=Image.BILINEAR))
    yaws, rolls = _estimate(estimator, crop, clockwise, clockwise[:, ::-1])
    (yaw0, yaw, _), (roll0, roll, roll_mirrored) = yaws, rolls
    assert abs(roll0) < 3  # alignment levels the eyes
    assert roll == pytest.approx(15.0, abs=3.0) and roll_mirrored == pytest.approx(-15.0, abs=3.0)
    assert abs(yaw - yaw0) < 3  # turning the picture does not turn the head
