"""tools/mine_hard.py: the CLI end to end on planted embeddings."""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.cli import mine as mine_hard
from tests.fr_data.mining.planted import PlantedSpec, make_planted, write_emb
from tests.repo import ROOT


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    x, truth = make_planted(PlantedSpec(identities=30, per_identity=(5, 10), split_identities=2,
                                        lookalike_pairs=2, seed=3))
    folder = write_emb(tmp_path_factory.mktemp("emb"), x, truth)
    race = tmp_path_factory.mktemp("attr") / "race.parquet"
    labels = np.unique(truth.labels)
    pq.write_table(pa.table({"label": pa.array(labels, pa.int64()),
                             "race": [["A", "B", "C"][i % 3] for i in range(len(labels))]}), race)
    return folder, race, truth


def test_cli_writes_a_complete_run_with_config_and_attributes(emb, tmp_path, capsys):
    folder, race, truth = emb
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"base: {ROOT / 'configs' / 'mining.yaml'}\nclasses:\n  merge_cos: 0.45\n")
    out = tmp_path / "RUN"
    rc = mine_hard.main(["--embeddings", str(folder), "--out", str(out), "--attributes", str(race),
                         "--config", str(cfg), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "classes.merge_cos" in printed and "0.4500*" in printed and f"wrote {out}" in printed
    assert sorted(p.name for p in out.iterdir()) == ["calibration.png", "classes.parquet", "config.yaml",
                                                     "groups.parquet", "pairs.parquet", "run.json",
                                                     "samples.parquet", "sweep.parquet"]
    run = json.loads((out / "run.json").read_text())
    assert run["thresholds"]["merge_cos"] == 0.45
    assert run["calibration"]["classes.merge_cos"]["method"] == "override"
    dup = run["calibration"]["duplicates.cos"]
    assert dup["method"] == "nn_distance_ratio" and run["thresholds"]["duplicate_cos"] == dup["value"]
    assert run["attributes"]["joined_by"] == "label" and run["groups"]["source"] == "attribute:race"
    groups = pq.read_table(out / "groups.parquet").column("group").to_pylist()
    assert groups == ["A", "B", "C"]
    s = pq.read_table(out / "samples.parquet", columns=["race", "group"]).to_pydict()
    assert s["race"] == s["group"]


def test_cli_refuses_an_existing_folder_unless_overwrite(emb, tmp_path, capsys):
    folder, _, _ = emb
    out = tmp_path / "RUN"
    out.mkdir()
    assert mine_hard.main(["--embeddings", str(folder), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert mine_hard.main(["--embeddings", str(folder), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert (out / "run.json").exists()


def test_cli_reports_bad_config_and_bad_input(emb, tmp_path, capsys):
    folder, _, _ = emb
    bad = tmp_path / "bad.yaml"
    bad.write_text("noise:\n  vote: 0.5\n")
    argv = ["--embeddings", str(folder), "--out", str(tmp_path / "R1"), "--config", str(bad)]
    assert mine_hard.main(argv) == 2
    assert "vote" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()  # a folder without embeddings (beside the output, not around it)
    assert mine_hard.main(["--embeddings", str(tmp_path / "empty"), "--out", str(tmp_path / "R2"), "--quiet"]) == 2
    assert "embeddings file does not exist" in capsys.readouterr().err
    assert not (tmp_path / "R1").exists() and not (tmp_path / "R2").exists()


def test_cli_runs_as_a_script(emb, tmp_path):
    folder, _, _ = emb
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "mine_hard.py"), "--embeddings", str(folder),
                           "--out", str(tmp_path / "RUN"), "--quiet"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "suspected mislabels" in proc.stdout


def test_ready_queries_run_on_a_mined_folder(emb, tmp_path):
    """The shipped queries, run on the read-only views of hardmine query."""
    from fr_data.query.views import open_run, run_query

    folder, _, _ = emb
    out = tmp_path / "RUN"
    assert mine_hard.main(["--embeddings", str(folder), "--out", str(out), "--quiet"]) == 0
    views = open_run(out)
    queries = sorted((ROOT / "manifests" / "queries").glob("*.sql"))
    assert len(queries) >= 5
    results = {q.stem: [tuple(row.values()) for row in run_query(views, q.read_text()).read_all().to_pylist()]
               for q in queries}
    run = json.loads((out / "run.json").read_text())
    assert len(results["duplicates_to_drop"]) == (run["counts"]["duplicates_same_class"]
                                                  + run["counts"]["duplicates_cross_class"])
    assert sum(r[2] for r in results["suspects_per_class"]) == run["counts"]["suspect_mislabel"]
    groups = {g["group"]: g["fpr"] for g in run["groups"]["rows"]}
    for g, _, _, fpr, _ in results["per_group_fpr"]:
        assert fpr == pytest.approx(groups[g])


def test_cli_writes_the_review_page_with_report(emb, tmp_path, capsys):
    from tests.fr_train.data.builders import make_shards

    folder, _, truth = emb
    shards = tmp_path / "shards"
    by_index = make_shards(shards, [int(v) for v in truth.labels], per_shard=60)
    index = pq.read_table(folder / "index.parquet")
    keyed = tmp_path / "emb"
    keyed.mkdir()
    for name in ("embeddings.npy", "run.json"):
        (keyed / name).write_bytes((folder / name).read_bytes())
    keys = pa.array([by_index[i] for i in range(index.num_rows)])
    pq.write_table(index.set_column(0, "key", keys), keyed / "index.parquet")
    out, page = tmp_path / "RUN", tmp_path / "page"
    argv = ["--embeddings", str(keyed), "--out", str(out), "--samples", str(shards / "samples.parquet"),
            "--report", str(page), "--quiet"]
    assert mine_hard.main(argv) == 0
    assert f"wrote the review page {page / 'index.html'}" in capsys.readouterr().out
    manifest = json.loads((page / "report.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert manifest["sections"]["suspects"]["total"] == run["counts"]["suspect_mislabel"]
    assert manifest["missing_keys"] == [] and manifest["thumbnails"] > 0
    with pytest.raises(SystemExit):  # --report needs the shards
        mine_hard.main(["--embeddings", str(keyed), "--out", str(tmp_path / "R2"), "--report", str(page)])
    assert "--report needs --samples" in capsys.readouterr().err


def test_config_takes_a_shipped_name_from_another_folder(emb, tmp_path, monkeypatch, capsys):
    folder, _, _ = emb
    monkeypatch.chdir(tmp_path)
    rc = mine_hard.main(["--embeddings", str(folder), "--out", "RUN", "--config", "mining_demo", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    saved = (tmp_path / "RUN" / "config.yaml").read_text()
    assert "cos: 0.985" in saved  # mining_demo's duplicate threshold, not the default 0.95


def test_implausible_flag_rates_end_the_output_with_a_warning(emb, tmp_path, capsys):
    folder, _, _ = emb
    cfg = tmp_path / "m.yaml"
    cfg.write_text("classes: {merge_cos: -1.0}\n")  # every class a merge candidate: implausible
    out = tmp_path / "RUN"
    assert mine_hard.main(["--embeddings", str(folder), "--out", str(out), "--config", str(cfg), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("warning: implausible flag rate:") and "merge candidate classes" in err[-1]
    run = json.loads((out / "run.json").read_text())
    assert run["plausibility"]["plausible"] is False
    assert run["plausibility"]["rates"]["merge_candidate_classes"]["rate"] == 1.0
