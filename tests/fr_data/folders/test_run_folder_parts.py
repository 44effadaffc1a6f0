"""samples.parquet from the ranks' parts: rank order, the row groups of one table written whole, the run
report as metadata, the parts removed."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.folders import run_folder as rf
from fr_data.io import parquet as io_parquet


def test_parts_join_into_the_row_groups_of_one_table(tmp_path, monkeypatch):
    monkeypatch.setattr(io_parquet, "ROW_GROUP_SIZE", 4)
    sizes = [3, 6, 0, 2]  # 11 rows over 4 ranks, one of them without rows
    start = 0
    for rank, size in enumerate(sizes):
        pq.write_table(pa.table({"row": pa.array(range(start, start + size), pa.int64())}), rf.part_file(tmp_path, rank),
                       row_group_size=2)
        start += size
    rf.join_samples_parts(tmp_path, len(sizes), {"ranks": 4})
    f = pq.ParquetFile(tmp_path / rf.SAMPLES_FILE)
    assert [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)] == [4, 4, 3]
    assert f.read().column("row").to_pylist() == list(range(11))
    assert json.loads(f.schema_arrow.metadata[rf.METADATA_KEY.encode()]) == {"ranks": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == [rf.SAMPLES_FILE]
