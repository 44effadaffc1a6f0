"""``hardmine mine`` under torchrun (issue 25, point 1): 1, 2 and 3 CPU ranks (gloo) write the run folder one
process writes; ranks that see another embeddings file or cannot see the output folder, and a rank that
dies mid-search, stop every rank with one line naming the rank (exit 2) and publish nothing.

The planted set is tiny (81 samples, 20 labels) and mined with the candidate strategy (``exact_max_n``
below N), whose class ranges split unevenly over 2 and 3 ranks. The exact strategy's split (query shares
against the streamed database) is tested in-process in tests/fr_data/mining/test_group.py.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.folders import run_folder as rf
from fr_data.io.config import load_config
from fr_data.mining import MiningConfig, mine
from fr_data.mining.config import NeighbourConfig
from tests.fr_data.mining.planted import PlantedSpec, make_planted, write_emb
from tests.fr_data.mining.test_pixel_check import pixel_data
from tests.hardmine.cli.ranks import assert_same_run, hand_started, torchrun

CANDIDATES = "neighbours: {exact_max_n: 10}\ncalibration: {figure: false}\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranks")
    x, truth = make_planted(PlantedSpec(identities=12, per_identity=(4, 8), seed=3))
    emb = write_emb(folder / "EMB", x, truth)
    other = write_emb(folder / "OTHER", *make_planted(PlantedSpec(identities=12, per_identity=(4, 8), seed=4)))
    (folder / "candidates.yaml").write_text(CANDIDATES)
    return folder, emb, other


def argv(folder, emb, out):
    return ["--embeddings", str(emb), "--out", str(out), "--config", str(folder / "candidates.yaml"), "--quiet",
            "--rank-timeout", "60"]


@pytest.fixture(scope="module")
def reference(data):
    """The run of one process, in this process (no launcher)."""
    folder, emb, _ = data
    cfg = load_config(folder / "candidates.yaml", MiningConfig)
    assert cfg.neighbours.exact_max_n < 81 <= NeighbourConfig().exact_max_n
    return mine(emb, folder / "REF", cfg).folder


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_torchrun_ranks_write_the_single_process_run(data, reference, ranks):
    folder, emb, _ = data
    out = folder / f"R{ranks}"
    done = torchrun(ranks, argv(folder, emb, out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(out, reference)
    info = json.loads((out / rf.RUN_FILE).read_text())
    assert info["neighbour_strategy"] == "candidates"
    assert info["ranks"] == ranks
    if ranks > 1:
        per_rank = info["timings_per_rank"]
        assert len(per_rank) == ranks and all(t["class_pass"]["peak_rss_mb"] > 0 for t in per_rank)
        assert all(0 < t["class_pass"]["peak_anon_mb"] <= t["class_pass"]["peak_rss_mb"] for t in per_rank)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # nothing staged left


def _one_line_each(ranks, want: str) -> None:
    for r in ranks:
        assert r.code == 2, ranks
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hardmine mine: error: ") and want in lines[0], r.err


def test_a_rank_with_other_embeddings_stops_every_rank(data):
    folder, emb, other = data
    out = folder / "SWAPPED"
    ranks = hand_started(2, argv(folder, emb, out), HARDMINE_SWAP=f"mine:embeddings={other}",
                         HARDMINE_FAULT_RANK="1")
    _one_line_each(ranks, f"rank 1: {other / 'embeddings.npy'}")
    assert "differ from rank 0's" in ranks[0].err
    assert not out.exists() and not (folder / ".SWAPPED.partial").exists()


def test_a_rank_that_cannot_see_the_output_stops_every_rank(data, tmp_path):
    folder, emb, _ = data
    out = folder / "UNSHARED"
    ranks = hand_started(2, argv(folder, emb, out), HARDMINE_SWAP=f"mine:out={tmp_path / 'UNSHARED'}",
                         HARDMINE_FAULT_RANK="1")
    _one_line_each(ranks, "rank 1: ")
    assert "cannot see rank 0's staging folder" in ranks[0].err and "filesystem every rank shares" in ranks[0].err
    assert not out.exists() and not (folder / ".UNSHARED.partial").exists()


def test_a_rank_dying_mid_search_stops_the_run_and_a_rerun_is_complete(data, reference):
    folder, emb, _ = data
    out = folder / "DIED"
    ranks = hand_started(2, argv(folder, emb, out), HARDMINE_KILL_AT="mine:search", HARDMINE_FAULT_RANK="1")
    assert ranks[1].code == -9  # killed at the point
    _one_line_each(ranks[:1], "rank 1 did not arrive")
    # the first exchange after the samples' search: the sizes of the negatives for the unified FPR threshold
    assert "stage 'fpr_pool'" in ranks[0].err
    assert not out.exists() and not (folder / ".DIED.partial").exists()
    again = hand_started(2, argv(folder, emb, out))
    assert [r.code for r in again] == [0, 0], again
    assert_same_run(out, reference)


def test_ranks_run_the_pixel_check_joins_and_provenance_of_the_single_process_run(tmp_path):
    """The duplicate candidates of every rank's rows meet on rank 0, which checks their pixels (the
    near-miss copy confirmed, the burst rejected, as in one process); each rank joins the attributes (by
    key: a group and a yaw, one attribute row matching no sample) and the manifest's provenance onto its
    own rows of samples.parquet."""
    tmp, _, _ = pixel_data(tmp_path)
    (tmp / "pixel.yaml").write_text("duplicates: {cos: 0.99, pixel_min: 0.985}\ncalibration: {figure: false}\n")
    samples = tmp / "shards" / "samples.parquet"
    manifest = pq.read_table(samples)  # the in-memory source has no files: give the rows some provenance
    manifest = manifest.set_column(manifest.schema.get_field_index("source_path"), "source_path",
                                   pa.array([f"people/{k}.png" for k in manifest.column("key").to_pylist()]))
    manifest = manifest.set_column(manifest.schema.get_field_index("identity"), "identity",
                                   pa.array([f"person{v}" for v in manifest.column("label").to_pylist()]))
    pq.write_table(manifest, samples)
    keys = pq.read_table(tmp / "EMB" / "index.parquet").column("key").to_pylist()
    attr = tmp / "attr.parquet"
    pq.write_table(pa.table({"key": keys[2:] + ["no-such-key"], "race": [f"r{i % 3}" for i in range(len(keys) - 1)],
                             "yaw": [float(10 * (i % 9)) for i in range(len(keys) - 1)]}), attr)
    reference = mine(tmp / "EMB", tmp / "REF", load_config(tmp / "pixel.yaml", MiningConfig), samples=samples,
                     attributes=attr)
    done = torchrun(3, ["--embeddings", str(tmp / "EMB"), "--out", str(tmp / "R3"), "--config",
                        str(tmp / "pixel.yaml"), "--samples", str(samples), "--attributes", str(attr), "--quiet",
                        "--rank-timeout", "60"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(tmp / "R3", reference.folder)
    info = json.loads((tmp / "R3" / rf.RUN_FILE).read_text())
    check = info["duplicates_pixel_check"]
    assert (check["candidates"], check["confirmed"], check["rejected"]) == (3, 2, 1)
    assert (info["attributes"]["unmatched_attribute_rows"], info["attributes"]["samples_without_attributes"]) == (1, 2)
    assert info["bins"]["pose_source"] == "attribute" and info["groups"]["source"] == "attribute:race"
    table = pq.read_table(tmp / "R3" / rf.SAMPLES_FILE)
    assert table.column("source_path").to_pylist() == [f"people/{k}.png" for k in keys]
    assert table.column("group").null_count == 2
    classes = pq.read_table(tmp / "R3" / rf.CLASSES_FILE)
    assert classes.column("identity").to_pylist() == [f"person{v}" for v in classes.column("label").to_pylist()]


def test_ranks_join_identity_attributes_as_one_process(data, tmp_path):
    """Attributes by label: a label's row joins the samples of every rank that holds some; an attribute
    row of a label no sample has is counted once, whatever the rank count."""
    folder, emb, _ = data
    labels = sorted(set(pq.read_table(emb / "index.parquet").column("label").to_pylist()))
    attr = tmp_path / "identities.parquet"
    pq.write_table(pa.table({"label": pa.array(labels[1:] + [10_000], pa.int64()),
                             "group": [f"g{i % 2}" for i in range(len(labels))]}), attr)
    cfg = load_config(folder / "candidates.yaml", MiningConfig)
    reference = mine(emb, tmp_path / "REF", cfg, attributes=attr)
    done = torchrun(3, [*argv(folder, emb, tmp_path / "R3"), "--attributes", str(attr)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(tmp_path / "R3", reference.folder)
    joined = json.loads((tmp_path / "R3" / rf.RUN_FILE).read_text())["attributes"]
    assert joined["unmatched_attribute_rows"] == 1 and joined["joined_by"] == "label"
