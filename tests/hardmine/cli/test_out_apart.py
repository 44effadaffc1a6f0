"""Every command refuses an output that is, contains or lies inside one of its inputs (issue 19, point 3).

``hardmine report RUN --out RUN --overwrite`` used to exit 0 after deleting the mining run. Each case
here gives a command an ``--out`` overlapping one of its inputs (directly, as a parent folder, inside it,
or through a symbolic link) and checks the exit code 2, the one-line error naming both paths, and that
no input file changed. The check comes before any work, so the inputs need not be valid.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.cli import embed, experiment_pool, mine, query, report, shard
from tests.hardmine.cli.helpers import run  # noqa: F401 (the query tests' tiny run folder)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def inputs(tmp_path) -> Path:
    """Folders RUN, SHARDS, EMB, SRC, EXP1 (each holding one file) and a link ``ln`` to RUN."""
    for name, file in [("RUN", "samples.parquet"), ("SHARDS", "samples.parquet"), ("EMB", "embeddings.npy"),
                       ("SRC", "train.rec"), ("EXP1", "results.parquet")]:
        (tmp_path / name).mkdir()
        if file.endswith(".parquet"):  # a real table: the command line reads Parquet footers
            pq.write_table(pa.table({"input": [name]}), tmp_path / name / file)
        else:
            (tmp_path / name / file).write_bytes(b"input " + name.encode())
    (tmp_path / "ln").symlink_to(tmp_path / "RUN")
    return tmp_path


CASES = {
    "report is its run": (report.main, ["RUN", "--shards", "SHARDS", "--out", "RUN", "--overwrite"], "RUN", "is"),
    "report through a link": (report.main, ["RUN", "--shards", "SHARDS", "--out", "ln", "--overwrite"], "RUN", "is"),
    "report inside the shards": (report.main, ["RUN", "--shards", "SHARDS", "--out", "SHARDS/page"], "SHARDS",
                                 "lies inside"),
    "mine into its embeddings": (mine.main, ["--embeddings", "EMB", "--out", "EMB", "--overwrite"], "EMB", "is"),
    "mine around its samples": (mine.main, ["--embeddings", "EMB", "--samples", "SHARDS/samples.parquet",
                                            "--out", "SHARDS", "--overwrite"], "SHARDS/samples.parquet",
                                "contains"),
    "mine --report over the run": (mine.main, ["--embeddings", "EMB", "--out", "RUN2", "--samples",
                                               "SHARDS/samples.parquet", "--report", "RUN2", "--overwrite"],
                                   "RUN2", "is"),
    "embed into its shards": (embed.main, ["--shards", "SHARDS", "--model", "resnet18", "--out", "SHARDS",
                                           "--overwrite", "--device", "cpu"], "SHARDS", "is"),
    "shard inside its source": (shard.main, ["--src", "SRC", "--out", "SRC/shards"], "SRC", "lies inside"),
    "shard around its source": (shard.main, ["--src", "SRC", "--out", "."], "SRC", "contains"),
    "pool over a member": (experiment_pool.main, ["EXP1", "--out", "EXP1", "--overwrite"], "EXP1", "is"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_out_overlapping_an_input_is_refused_before_any_work(case, inputs, capsys, monkeypatch):
    main, argv, given, relation = CASES[case]
    monkeypatch.chdir(inputs)
    before = digests(inputs)
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    out = argv[argv.index("--report") + 1] if "--report" in argv else argv[argv.index("--out") + 1]
    assert "\n" not in line and f"{out}: the output {relation} the input {given} " in line, line
    assert digests(inputs) == before
    assert sorted(p.name for p in inputs.iterdir()) == ["EMB", "EXP1", "RUN", "SHARDS", "SRC", "ln"]


def test_query_refuses_an_output_that_is_a_file_it_reads(run, capsys):  # noqa: F811
    before = digests(run)
    target = run / "samples.parquet"
    assert query.main([str(run), "SELECT 1 AS x", "--parquet", str(target)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
    assert len(errors) == 1 and f"{target}: the output is the input {target} " in errors[0], errors
    with pytest.raises(SystemExit) as stop:  # an output folder is refused while parsing the command line
        query.main([str(run), "SELECT 1 AS x", "--csv", str(run)])
    assert stop.value.code == 2 and "is a folder, not a file" in capsys.readouterr().err
    assert digests(run) == before
