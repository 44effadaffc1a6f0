"""fr_data.ingest.sources: RecordIO sources (both layouts, idx repair, bad records) and image folders."""

from __future__ import annotations

import numpy as np
import pytest

from fr_data.formats import recordio as rio
from fr_data.ingest.image_folder import ImageFolderSource
from fr_data.ingest.recordio_source import RecordIOSource
from fr_data.ingest.source import Source, SourceRecord
from fr_data.ingest.sources import open_source
from fr_data.io.errors import DataError
from fr_data.io.policy import ErrorPolicy
from tests.fr_data.formats._recordio_fixtures import M, tiny_image

LABELS = [0, 0, 1, 2, 2, 2]


@pytest.fixture
def images() -> list[bytes]:
    return [tiny_image(10 * i) for i in range(len(LABELS))]


@pytest.fixture
def insightface(tmp_path, images):
    folder = tmp_path / "ins"
    rio.write_insightface(folder, zip(LABELS, images))
    return folder


def _write_raw(folder, payloads: list[bytes], keys=None, property_text: str | None = None):
    """A .rec/.idx with arbitrary payloads (for bad records and crafted headers)."""
    folder.mkdir(parents=True, exist_ok=True)
    with rio.RecordIOWriter(folder / "train.rec", folder / "train.idx") as writer:
        for i, payload in enumerate(payloads):
            writer.write(i if keys is None else keys[i], payload)
    if property_text is not None:
        (folder / "property").write_text(property_text)
    return folder


# -- InsightFace layout ---------------------------------------------------------------------------


def test_insightface_folder_reads_images_and_labels(insightface, images):
    src = RecordIOSource(insightface)
    assert isinstance(src, Source)
    assert src.layout.name == "insightface" and len(src) == 6 and src.num_classes == 3
    assert src.indices().tolist() == [1, 2, 3, 4, 5, 6] and src.indices().dtype == np.int64
    assert [src.read(k) for k in src.indices()] == [
        SourceRecord(i + 1, label, images[i]) for i, label in enumerate(LABELS)]
    desc = src.describe()
    assert desc["layout"] == "insightface" and desc["num_records"] == 10 and desc["notes"] == []


def test_rec_file_path_and_open_source(insightface):
    assert isinstance(open_source(insightface), RecordIOSource)
    src = open_source(insightface / "train.rec")
    assert isinstance(src, RecordIOSource) and len(src) == 6


def test_identity_records_are_not_images(insightface):
    src = RecordIOSource(insightface)
    for key in (0, 7, 99):
        with pytest.raises(DataError, match=f"key {key}"):
            src.read(key)


def test_header_that_disagrees_with_the_index_is_overruled(tmp_path, images):
    # header claims identity records start at 2^24 + 3 (as a float32-rounded header might); the index
    # holds 3 images (keys 1..3) and 2 identity records (keys 4, 5)
    meta = [rio.pack_image_record([float(2**24 + 3), float(2**24 + 5)], b"")]
    body = [rio.pack_image_record(lab, img) for lab, img in zip([0, 0, 1], images)]
    ids = [rio.pack_image_record([1, 3], b""), rio.pack_image_record([3, 4], b"")]
    folder = _write_raw(tmp_path / "d", meta + body + ids)
    src = RecordIOSource(folder)
    assert src.layout.name == "insightface" and src.indices().tolist() == [1, 2, 3] and src.num_classes == 2
    assert len(src.notes) == 1 and "2^24" in src.notes[0] and "using the index" in src.notes[0]
    assert src.read(3).label == 1


def test_property_file_disagreement_is_reported(insightface):
    (insightface / "property").write_text("5,112,112\n")
    src = RecordIOSource(insightface)
    assert src.num_classes == 3 and any("property file says 5" in n for n in src.notes)


# -- headerless layout ----------------------------------------------------------------------------


def test_headerless_with_vector_labels(tmp_path, images):
    order = [3, 0, 5, 1, 4, 2]
    folder = tmp_path / "h"
    rio.write_insightface(folder, [(LABELS[i], images[i]) for i in order], vector_label=True, shuffled=True)
    src = RecordIOSource(folder)
    assert src.layout.name == "headerless" and src.indices().tolist() == list(range(6))
    assert [src.read(k).label for k in range(6)] == [LABELS[i] for i in order]
    assert src.read(2).data == images[5]


def test_headerless_without_property_counts_classes_by_scanning(tmp_path, images):
    folder = _write_raw(tmp_path / "p", [rio.pack_image_record(lab, img) for lab, img in zip([4, 1], images)])
    src = RecordIOSource(folder)
    assert src.num_classes == 5 and any("max label + 1" in n for n in src.notes)
    assert RecordIOSource(folder, num_classes=7).num_classes == 7


def test_headerless_with_property_uses_it(tmp_path, images):
    folder = _write_raw(tmp_path / "p", [rio.pack_image_record(1, images[0])], property_text="2,112,112\n")
    src = RecordIOSource(folder)
    assert src.num_classes == 2 and src.read(0).label == 1


# -- index repair -----------------------------------------------------------------------------------


def test_missing_idx_is_rebuilt_next_to_the_rec(insightface):
    original = (insightface / "train.idx").read_text()
    (insightface / "train.idx").unlink()
    src = RecordIOSource(insightface)
    assert (insightface / "train.idx").read_text() == original
    assert src.describe()["index_origin"] == "file" and "was missing" in src.notes[0]
    assert len(src) == 6


def test_missing_idx_can_stay_in_memory(insightface):
    (insightface / "train.idx").unlink()
    src = RecordIOSource(insightface, write_missing_idx=False)
    assert not (insightface / "train.idx").exists()
    assert src.describe()["index_origin"] == "scan" and "in memory" in src.notes[0]
    assert src.read(6).label == 2


def test_inconsistent_idx_raises_or_is_repaired(insightface):
    lines = (insightface / "train.idx").read_text().splitlines()
    lines[3] = "3\t999999"
    (insightface / "train.idx").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        RecordIOSource(insightface)
    assert err.value.path.endswith("train.idx") and err.value.where == "key 3"
    assert "rebuild" in err.value.reason
    src = RecordIOSource(insightface, repair_idx=True)
    assert src.read(3).label == 1 and "inconsistent" in src.notes[0]


def test_idx_offset_not_on_a_record_fails_at_that_key(insightface):
    keys, offsets = rio.load_idx(insightface / "train.idx")
    offsets[2] += 24  # 4-aligned, inside record 2's payload
    rio.write_idx(insightface / "train.idx", keys, offsets)
    src = RecordIOSource(insightface)
    assert src.read(1).label == 0
    with pytest.raises(DataError) as err:
        src.read(2)
    assert err.value.where.startswith("key 2, offset") and "no record starts here" in err.value.reason


# -- bad records ------------------------------------------------------------------------------------


@pytest.fixture
def bad_folder(tmp_path, images):
    payloads = [
        rio.pack_image_record(0, images[0]),
        rio.pack_image_record(1, b"GIF89a not an image"),
        rio.pack_image_record(1.5, images[1]),
        rio.pack_image_record(3, images[2]),
        rio.pack_image_record(-1, images[3]),
        rio.pack_image_record(float("nan"), images[4]),
        b"short",
        rio.pack_image_record(1, b""),
        rio.pack_image_record(1, images[5] + M),
    ]
    return _write_raw(tmp_path / "bad", payloads, property_text="3,112,112\n")


@pytest.mark.parametrize(
    "key, reason",
    [
        (1, "not a JPEG or PNG"),
        (2, "label 1.5 is not a whole number"),
        (3, r"label 3 is out of range \[0, 3\)"),
        (4, "out of range"),
        (5, "not a whole number"),
        (6, "shorter than the 24-byte header"),
        (7, "is empty"),
    ],
)
def test_bad_records_raise_data_error_naming_file_and_key(bad_folder, key, reason):
    src = RecordIOSource(bad_folder)
    with pytest.raises(DataError, match=reason) as err:
        src.read(key)
    assert err.value.path == str(bad_folder / "train.rec")
    assert err.value.where.startswith(f"key {key}, offset ")


def test_good_records_among_bad_ones(bad_folder, images):
    src = RecordIOSource(bad_folder)
    assert src.read(0) == SourceRecord(0, 0, images[0])
    assert src.read(8).data == images[5] + M  # split record survives intact


def test_truncated_rec_is_reported_at_the_record(insightface):
    rec = insightface / "train.rec"
    keys, offsets = rio.load_idx(insightface / "train.idx")
    (insightface / "train.idx").write_text("".join(f"{k}\t{o}\n" for k, o in zip(keys[:5], offsets[:5])))
    rec.write_bytes(rec.read_bytes()[: int(offsets[4]) + 30])
    src = RecordIOSource(insightface, num_classes=3)
    assert src.read(3).label == 1
    with pytest.raises(DataError) as err:
        src.read(4)
    assert "truncated" in err.value.reason and err.value.where.startswith("key 4")


def test_wrong_magic_at_record_0_falls_back_to_headerless(tmp_path, images):
    payloads = [rio.pack_image_record(0, images[0])] * 2
    folder = _write_raw(tmp_path / "m", payloads, property_text="1,112,112\n")
    data = bytearray((folder / "train.rec").read_bytes())
    data[0] ^= 0xFF
    (folder / "train.rec").write_bytes(bytes(data))
    src = RecordIOSource(folder)
    assert src.layout.name == "headerless" and "unreadable" in src.notes[0]
    with pytest.raises(DataError, match="wrong magic") as err:
        src.read(0)
    assert err.value.where == "key 0, offset 0"
    assert src.read(1).label == 0


# -- batched reads ----------------------------------------------------------------------------------


def _comparable(result):
    """A record, or a DataError as its type, text and location (exceptions do not compare by value)."""
    if isinstance(result, Exception):
        return type(result), str(result), result.path, result.where, result.reason
    return result


def _read_outcome(src, key):
    try:
        return src.read(key)
    except DataError as exc:
        return exc


def _assert_read_many_equals_read(src, keys):
    """``src.read_many(keys)`` gives, in order, what ``src.read`` gives or raises key by key."""
    many = src.read_many(keys)
    assert [_comparable(r) for r in many] == [_comparable(_read_outcome(src, k)) for k in keys]
    return many


@pytest.mark.parametrize("keys", [
    [1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1], [4, 1, 4, 6, 2, 2, 5, 3],
    [0, 7, 8, 9, 3, 10, 99, -1, 3],  # header and identity records, absent keys
])
def test_read_many_equals_read_in_the_insightface_layout(insightface, keys):
    src = RecordIOSource(insightface)
    many = _assert_read_many_equals_read(src, keys)
    assert all(isinstance(r, SourceRecord) == (1 <= k <= 6) for k, r in zip(keys, many))
    as_array = src.read_many(np.asarray(keys, dtype=np.int64))
    assert [_comparable(r) for r in as_array] == [_comparable(r) for r in many]


def test_read_many_equals_read_with_vector_labels_and_split_records(tmp_path, images):
    split_image = images[0] + M + b"tail" + M  # stored as a three-part record
    payloads = [rio.pack_image_record([i % 3, 1.0], img) for i, img in enumerate(images)]
    payloads.append(rio.pack_image_record(2, split_image))
    folder = _write_raw(tmp_path / "v", payloads, property_text="3,1,1\n")
    src = RecordIOSource(folder)
    many = _assert_read_many_equals_read(src, [6, 0, 5, 6, 2])
    assert many[0] == SourceRecord(6, 2, split_image) and many[1].label == 0


def test_read_many_gives_the_errors_read_raises(bad_folder, images):
    src = RecordIOSource(bad_folder)
    keys = [8, 7, 6, 5, 4, 3, 2, 1, 0, 3, 8, 42]
    many = _assert_read_many_equals_read(src, keys)
    assert [isinstance(r, SourceRecord) for r in many] == [k in (0, 8) for k in keys]
    assert many[0].data == images[5] + M and "not an image record" in many[-1].reason


def test_read_many_errors_of_broken_index_offsets_and_truncated_files(insightface):
    keys, offsets = rio.load_idx(insightface / "train.idx")
    offsets[2] += 24  # key 2 now points inside record 2's payload
    rio.write_idx(insightface / "train.idx", keys, offsets)
    many = _assert_read_many_equals_read(RecordIOSource(insightface), [3, 2, 1, 2])
    assert "no record starts here" in many[1].reason
    rec = insightface / "train.rec"
    (insightface / "train.idx").write_text("".join(f"{k}\t{o}\n" for k, o in zip(keys[:5], offsets[:5])))
    rec.write_bytes(rec.read_bytes()[: int(offsets[4]) + 30])
    many = _assert_read_many_equals_read(RecordIOSource(insightface, num_classes=3), [4, 3, 1, 2])
    assert "truncated" in many[0].reason and many[1].label == 1


def test_missing_rec(tmp_path):
    with pytest.raises(DataError, match="not found"):
        RecordIOSource(tmp_path / "nothing.rec")


# -- image folders ----------------------------------------------------------------------------------


@pytest.fixture
def folder_tree(tmp_path):
    root = tmp_path / "faces"
    files = {"bob/2.jpg": tiny_image(1), "bob/1.png": tiny_image(2, "PNG"), "alice/x.jpeg": tiny_image(3),
             "carol/a.JPG": tiny_image(4)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / ".cache").mkdir()
    return root, files


def test_image_folder_labels_identities_in_sorted_order(folder_tree):
    root, files = folder_tree
    src = ImageFolderSource(root)
    assert isinstance(src, Source) and isinstance(open_source(root), ImageFolderSource)
    assert src.classes == ["alice", "bob", "carol"] and src.num_classes == 3 and len(src) == 4
    assert src.indices().tolist() == [0, 1, 2, 3]
    order = ["alice/x.jpeg", "bob/1.png", "bob/2.jpg", "carol/a.JPG"]
    assert [src.read(i) for i in range(4)] == [
        SourceRecord(i, label, files[rel]) for i, (label, rel) in enumerate(zip([0, 1, 1, 2], order))]


def test_empty_identity_folder(folder_tree):
    root, _ = folder_tree
    (root / "dave").mkdir()
    with pytest.raises(DataError, match="holds no images") as err:
        ImageFolderSource(root)
    assert err.value.path == str(root / "dave")


@pytest.mark.parametrize(
    "rel, reason",
    [
        ("bob/notes.txt", "not an image"),
        ("README.md", "not an identity folder"),
        ("bob/sub/x.jpg", "nested folder"),
    ],
)
def test_unexpected_files_are_named(folder_tree, rel, reason):
    """Strict: refused naming the path and --skip-corrupt; skip: left out and listed."""
    root, _ = folder_tree
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(b"x")
    with pytest.raises(DataError, match=reason) as err:
        ImageFolderSource(root)
    assert err.value.path.startswith(str(root / rel.split("/")[0])) and "--skip-corrupt" in err.value.reason
    src = ImageFolderSource(root, errors=ErrorPolicy.SKIP)
    assert [(str(s.path), s.index, s.reason.startswith(reason)) for s in src.skipped] == [
        (str(root / ("bob/sub" if rel == "bob/sub/x.jpg" else rel)), None, True)]
    assert len(src) == 4 and src.classes == ["alice", "bob", "carol"]


def test_non_image_content_and_unreadable_files(folder_tree):
    root, _ = folder_tree
    (root / "alice" / "x.jpeg").write_bytes(b"<html>not a jpeg</html>")
    (root / "carol" / "b.jpg").symlink_to(root / "missing.jpg")
    src = ImageFolderSource(root)
    with pytest.raises(DataError, match="not a JPEG or PNG") as err:
        src.read(0)
    assert err.value.path == str(root / "alice" / "x.jpeg") and err.value.where == "index 0"
    with pytest.raises(DataError, match="unreadable") as err:
        src.read(4)
    assert err.value.path == str(root / "carol" / "b.jpg")
    with pytest.raises(DataError, match="out of range"):
        src.read(5)


def test_empty_root_and_unknown_paths(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no identity folders"):
        ImageFolderSource(tmp_path / "empty")
    with pytest.raises(DataError, match="not a RecordIO folder"):
        open_source(tmp_path / "nope")


def test_truncated_rec_with_full_idx_is_repaired_up_to_the_last_whole_record(insightface):
    rec = insightface / "train.rec"
    keys, offsets = rio.load_idx(insightface / "train.idx")
    rec.write_bytes(rec.read_bytes()[: int(offsets[5]) + 30])  # record 5 cut short, 6.. gone
    with pytest.raises(DataError, match="not a record start") as err:
        RecordIOSource(insightface)
    assert err.value.where == "key 6"
    src = RecordIOSource(insightface, repair_idx=True, num_classes=3)
    assert src.layout.name == "insightface" and src.indices().tolist() == [1, 2, 3, 4]
    assert any("ends inside a record" in n for n in src.notes)
    assert any("header record 0 says" in n for n in src.notes)


def test_unreadable_record_at_the_layout_boundary_is_noted(tmp_path, images):
    meta = [rio.pack_image_record([9.0, 11.0], b"")]  # wrong header: forces the binary search
    body = [rio.pack_image_record(0, img) for img in images[:3]]
    ids = [rio.pack_image_record([1, 4], b"")]
    folder = _write_raw(tmp_path / "u", meta + body + ids)
    keys, offsets = rio.load_idx(folder / "train.idx")
    offsets[3] += 4  # key 3 (probed by the search) now points inside a payload
    rio.write_idx(folder / "train.idx", keys, offsets)
    src = RecordIOSource(folder)
    assert src.indices().tolist() == [1, 2, 3] and src.num_classes == 1
    assert any("key 3 is unreadable" in n for n in src.notes)
    with pytest.raises(DataError, match="wrong magic"):
        src.read(3)
