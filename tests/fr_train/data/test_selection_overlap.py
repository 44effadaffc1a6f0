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


def test_the_review_overlap_section_keeps_false_matches_and_drop_confirms(data, tmp_path):
    """keep on a class card (any non-leaked key of the class) trains the class again, keep on a leaked
    image trains that image again; neither lifts a mining filter; drop and undecided cards stay excluded."""
    k = data.key
    folder = _overlap(tmp_path / "OVL", [
        ("lfw.bin", 0, "0", None, 0, 0.8, "identity", 1, None, False),
        ("lfw.bin", 1, "1", None, 2, 0.7, "identity", 1, None, False),
        ("lfw.bin", 2, "2", None, 3, 0.9, "identity", 1, None, False),
        ("lfw.bin", 3, "3", None, 4, 0.99, "image", 1, k[4, 1], True),
        ("lfw.bin", 4, "4", None, 5, 0.99, "image", 1, k[5, 2], False),
    ])
    review = tmp_path / "review.csv"
    review.write_text(f"key,decision,section\n{k[0, 3]},keep,overlap\n{k[3, 0]},drop,overlap\n"
                      f"{k[4, 1]},keep,overlap\n")
    cfg = SelectionConfig(exclude_overlap=str(folder), review=str(review), drop_suspects=True)
    sel = resolve_selection(cfg, data.shards, data.run)
    kept = set(sel.keys)
    assert {k[0, i] for i in range(6) if i != 3} <= kept and k[0, 3] not in kept  # still a suspect
    assert not {k[2, i] for i in range(6)} & kept and not {k[3, i] for i in range(6)} & kept
    assert k[4, 1] in kept and k[5, 2] not in kept and k[5, 0] in kept
    assert len(sel) == 36 - 2 - 6 - 6 - 1
    assert sel.report["dropped"] == {**sel.report["dropped"], "suspect": 2, "review": 1, "overlap_class": 11,
                                     "overlap_image": 1}
    assert sel.report["overlap"] == {"folder": str(folder), "classes": 11, "images": 1,
                                     "overlap_classes_kept": 1, "overlap_images_kept": 1}
    without = SelectionConfig(review=str(review), drop_suspects=True)
    with pytest.raises(DataError, match=r"review.csv.*line 2.*exclude_overlap"):
        resolve_selection(without, data.shards, data.run)
