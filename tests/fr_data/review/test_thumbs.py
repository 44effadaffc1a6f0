"""Thumbnails by key through the shard index: the right image for each key, missing keys listed, the index
cache built when absent, undecodable images reported."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from fr_data.folders.report_folder import thumb_name
from fr_data.folders.shard_folder import SHARD_INDEX_FILE
from fr_data.io.errors import DataError
from fr_data.review import thumbs
from tests.fr_train.data.builders import class_colour, make_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("thumbs") / "shards"
    by_index = make_shards(out, [i // 4 for i in range(24)], per_shard=5)
    return out, by_index


def background(jpeg: bytes) -> tuple[int, ...]:
    """Mean colour of the right-most column (the stripe of builders.face_jpeg never reaches it)."""
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.int64)
    return tuple(int(v) for v in pixels[:, -1].mean(0))


def test_each_key_gets_a_thumbnail_of_its_own_image(shards, tmp_path):
    folder, by_index = shards
    wanted = {by_index[i]: i // 4 for i in (0, 5, 11, 23)}
    located = thumbs.locate(folder, list(wanted) + ["no-such-key"])
    assert located.missing == ["no-such-key"] and len(located.index) == 4
    (tmp_path / "img").mkdir()
    calls = []
    assert thumbs.write_thumbnails(located, tmp_path, size=48, progress=calls.append) == {}
    assert sum(calls) == 4
    for key, label in wanted.items():
        data = (tmp_path / thumb_name(key)).read_bytes()
        assert Image.open(io.BytesIO(data)).size == (48, 48)
        assert np.abs(np.subtract(background(data), class_colour(label))).max() <= 12


def test_the_index_cache_is_built_once_then_read_for_the_wanted_rows_only(shards, tmp_path):
    folder, by_index = shards
    (folder / SHARD_INDEX_FILE).unlink(missing_ok=True)
    first = thumbs.locate(folder, [by_index[3]])
    assert (folder / SHARD_INDEX_FILE).is_file() and first.missing == []
    stamp = os.stat(folder / SHARD_INDEX_FILE).st_mtime_ns
    shards_read, table = thumbs.index_rows(folder, [by_index[3], by_index[20]])
    assert table.num_rows == 2 and len(shards_read) == 5
    assert os.stat(folder / SHARD_INDEX_FILE).st_mtime_ns == stamp  # reused, not rebuilt


def test_a_folder_without_shards_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no shard"):
        thumbs.locate(tmp_path, ["k"])


def test_thumbnails_keep_the_aspect_and_never_upscale():
    wide = io.BytesIO()
    Image.new("RGB", (300, 150), (10, 200, 30)).save(wide, format="PNG")
    assert Image.open(io.BytesIO(thumbs.make_thumbnail(wide.getvalue(), 112))).size == (112, 56)
    small = io.BytesIO()
    Image.new("RGB", (40, 40), (0, 0, 0)).save(small, format="JPEG")
    assert Image.open(io.BytesIO(thumbs.make_thumbnail(small.getvalue(), 112))).size == (40, 40)


def test_an_undecodable_image_is_reported_by_key_not_a_crash(shards, tmp_path):
    folder, by_index = shards
    bad, good = by_index[1], by_index[2]
    located = thumbs.locate(folder, [bad, good])
    real = located.index.read_image
    located.index.read_image = lambda key: b"\xff\xd8 not a jpeg" if key == bad else real(key)
    (tmp_path / "img").mkdir()
    failed = thumbs.write_thumbnails(located, tmp_path)
    assert list(failed) == [bad] and failed[bad].startswith("image cannot be decoded")
    assert (tmp_path / thumb_name(good)).is_file() and not (tmp_path / thumb_name(bad)).exists()
