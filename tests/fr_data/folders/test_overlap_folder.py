"""The overlap folder's columns are the ones manifests/README.md documents; the classes table is derived
from the identity rows only."""

from __future__ import annotations

import pyarrow as pa

from fr_data.folders import overlap_folder as of
from tests.fr_data.folders.helpers import documented_columns


def test_readme_documents_every_column():
    assert documented_columns(of.OVERLAP_FILE) == of.OVERLAP_SCHEMA.names + of.OVERLAP_OPTIONAL.names
    assert documented_columns(of.CLASSES_FILE) == of.CLASSES_SCHEMA.names


def test_classes_count_identity_rows_only(tmp_path):
    rows = [("a", 0, "0", None, 7, 0.5, "identity", 1, None, False),
            ("a", 1, "1", None, 7, 0.7, "identity", 2, None, False),
            ("a", 1, "1", None, 7, 0.99, "image", 1, "k", True),
            ("a", 2, "2", None, 8, 0.99, "image", 1, "j", False)]
    table = pa.Table.from_pylist([dict(zip(of.OVERLAP_SCHEMA.names, r)) for r in rows], schema=of.OVERLAP_SCHEMA)
    classes = of.write_tables(tmp_path, table).to_pylist()
    assert len(classes) == 1 and classes[0]["label"] == 7 and classes[0]["eval_images"] == 2
    assert abs(classes[0]["max_cos"] - 0.7) < 1e-6 and abs(classes[0]["mean_cos"] - 0.6) < 1e-6
    of.write_info(tmp_path, {})
    assert of.excluded(tmp_path) == ({7}, {"k", "j"})
