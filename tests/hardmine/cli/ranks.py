"""Helpers of the distributed mining tests: a free port, ``hardmine mine`` under the torchrun launcher
or as hand-started ranks (``RANK``/``WORLD_SIZE`` in the environment, each rank a plain process: the
group's store lives in rank 0, so when another rank dies rank 0 alone decides how the run ends), and the
comparison of two run folders."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.folders import run_folder as rf
from tests.repo import ROOT

#: The tables that must not depend on the rank count.
TABLES = ("samples.parquet", "pairs.parquet", "classes.parquet", "groups.parquet", "sweep.parquet")
#: run.json fields that may differ between runs of the same inputs (clocks, memory, the rank count).
VARYING = {"created", "timings", "timings_per_rank", "ranks"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def torchrun(ranks: int, argv: list[str]) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc_per_node R --master_port P -m hardmine mine ARGV``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
           "--master_port", str(free_port()), "-m", "hardmine", "mine", *argv]
    return subprocess.run(cmd, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=240,
                          check=False)


@dataclass
class Rank:
    code: int
    err: str


def hand_started(ranks: int, argv: list[str], **faults: str) -> list[Rank]:
    """Start ``hardmine mine ARGV`` as ``ranks`` processes of one group (no launcher); wait for all."""
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, "-m", "hardmine", "mine", *argv], cwd=ROOT,
                              env=environment(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(ranks),
                                              LOCAL_WORLD_SIZE=str(ranks), MASTER_ADDR="127.0.0.1",
                                              MASTER_PORT=port, **faults),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for r in range(ranks)]
    return [Rank(p.wait(timeout=240), p.stderr.read()) for p in procs]


def table_bytes(table: pa.Table) -> bytes:
    """The Arrow IPC stream of ``table`` without its key-value metadata (schema and values, NaN bits)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as w:
        w.write_table(table.replace_schema_metadata(None))
    return sink.getvalue().to_pybytes()


def steady(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in VARYING}


def assert_same_run(got: Path, want: Path) -> None:
    """Same tables (values and schemas), same metadata and run.json but for clocks and the rank count."""
    for name in TABLES:
        a, b = pq.read_table(got / name), pq.read_table(want / name)
        assert table_bytes(a) == table_bytes(b), name
        meta = [steady(json.loads(t.schema.metadata[rf.METADATA_KEY.encode()])) for t in (a, b)]
        assert meta[0] == meta[1], name
    runs = [steady(json.loads((f / rf.RUN_FILE).read_text())) for f in (got, want)]
    assert runs[0] == runs[1]
