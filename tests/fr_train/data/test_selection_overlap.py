"""``data.selection.exclude_overlap``: the classes an overlap audit names and the leaked images are dropped
from training (the tiny fake run of builders.py: classes 0-5, six samples each)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fr_data.folders import overlap_folder as of
from fr_data.io.errors import DataError
from fr_train.data.config import SelectionConfig
from fr_train.data.selection import resolve_selection
from tests.fr_train.data.builders import make_tiny_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("selection_overlap"))


def _overlap(folder, rows):
    folder.mkdir()
    names = [f.name for f in of.OVERLAP_SCHEMA]
    table = pa.Table.from_pylist([dict(zip(names, r)) for r in rows], schema=of.OVERLAP_SCHEMA)
    of.write_tables(folder, table)
    of.write_info(folder, {"counts": {}})
    return folder


def test_overlapping_classes_and_leaked_images_are_dropped(data, tmp_path):
    leaked = data.key[4, 1]
    folder = _overlap(tmp_path / "OVL", [
        ("lfw.bin", 0, "0", None, 2, 0.8, "identity", 1, None, False),
        ("lfw.bin", 1, "1", None, 2, 0.7, "identity", 1, None, False),
        ("lfw.bin", 1, "1", None, 4, 0.99, "image", 1, leaked, True),
    ])
    sel = resolve_selection(SelectionConfig(exclude_overlap=str(folder)), data.shards, data.run)
    assert len(sel) == 36 - 6 - 1
    assert not {data.key[2, i] for i in range(6)} & set(sel.keys)  # no sample of class 2 trains
    assert leaked not in set(sel.keys) and data.key[4, 0] in set(sel.keys)
    assert 2 not in set(sel.old_labels.tolist())
    assert sel.report["dropped"]["overlap_class"] == 6 and sel.report["dropped"]["overlap_image"] == 1
    assert sel.report["overlap"] == {"folder": str(folder), "classes": 6, "images": 1}


def test_an_audit_of_other_data_is_refused(data, tmp_path):
    folder = _overlap(tmp_path / "OVL", [("lfw.bin", 0, "0", None, 99, 0.8, "identity", 1, None, False)])
    with pytest.raises(DataError, match="label 99"):
        resolve_selection(SelectionConfig(exclude_overlap=str(folder)), data.shards, data.run)
    with pytest.raises(DataError, match="overlap.json"):
        resolve_selection(SelectionConfig(exclude_overlap=str(tmp_path)), data.shards, data.run)
