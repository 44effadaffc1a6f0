"""Image leaks confirmed by the pixel check: a copy that was cropped and resized back (its embedding far
from the original's) is found, another photo at a high cosine is not, and without the evaluation images
the cosine rule applies.

Tiny hand-made data: four training textures (8 x 8 pixel blocks) (rows 0-3); the evaluation images are a tighter crop of row 0
resized back (a leak the cosine rule misses: planted cosine 0.90), a new texture planted at cosine 0.999
to row 1 (another photo of the person: the cosine rule's false leak), and a re-encoding of row 2 (cosine
0.995: both rules find it).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from fr_data.mining.pixel_check import aligned_pixel_sim, grey_thumbnail, zoomed_thumbnails
from fr_data.overlap.audit import LeakPixels, image_matches
from tests.fr_data.mining.planted import brute_knn
from tests.fr_data.mining.test_pixel_check import at_cos, jpeg, texture


def cropped(data: bytes, pixels: int) -> bytes:
    """``pixels`` cut off every side, resized back to 112 x 112 (as the synthetic evaluation sets do)."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
    rgb = rgb.crop((pixels, pixels, 112 - pixels, 112 - pixels)).resize((112, 112), Image.BILINEAR)
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_a_cropped_copy_correlates_only_at_the_zoom_that_undoes_the_crop():
    original = jpeg(texture(0))
    copy = cropped(original, 4)
    plain = float(grey_thumbnail(original) @ grey_thumbnail(copy))
    aligned = aligned_pixel_sim(zoomed_thumbnails(original), zoomed_thumbnails(copy))
    assert plain < 0.8 and aligned > 0.985  # the whole thumbnails differ; 4/112 off each side matches back
    other = aligned_pixel_sim(zoomed_thumbnails(original), zoomed_thumbnails(jpeg(texture(1))))
    assert abs(other) < 0.5
    same = zoomed_thumbnails(original)
    assert aligned_pixel_sim(same, same) > 0.9999


def _setup():
    train_images = [jpeg(texture(i)) for i in range(4)]
    rng = np.random.default_rng(3)
    train = np.linalg.qr(rng.standard_normal((16, 4)))[0].T.astype(np.float32)  # 4 orthonormal rows
    eval_images = [cropped(train_images[0], 4), jpeg(texture(50)), jpeg(texture(2))]
    vectors = np.stack([at_cos(train[0], 0.90, rng), at_cos(train[1], 0.999, rng),
                        at_cos(train[2], 0.995, rng)]).astype(np.float32)
    return train_images, train, eval_images, vectors


def test_pixel_check_finds_the_cropped_copy_and_rejects_the_other_photo():
    train_images, train, eval_images, vectors = _setup()
    pixels = LeakPixels(lambda row: train_images[row], 0.985)
    found = image_matches(vectors, eval_images, train, np.array([7, 8, 9, 10]), None, 0.99, 2, brute_knn, pixels)
    assert found.eval_index.tolist() == [0, 2] and found.train_row.tolist() == [0, 2]
    assert found.class_id.tolist() == [7, 9] and found.rank.tolist() == [1, 1]
    assert np.allclose(found.cos, [0.90, 0.995], atol=1e-5)
    assert (found.pixel_sim >= 0.985).all()


def test_without_evaluation_images_the_cosine_rule_decides():
    train_images, train, _, vectors = _setup()
    pixels = LeakPixels(lambda row: train_images[row], 0.985)
    found = image_matches(vectors, None, train, np.arange(4), None, 0.99, 2, brute_knn, pixels)
    assert found.train_row.tolist() == [1, 2]  # the other photo at 0.999 in, the crop at 0.90 out
    assert np.isnan(found.pixel_sim).all()
