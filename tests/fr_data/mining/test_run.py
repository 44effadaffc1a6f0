"""End-to-end mining on planted embeddings: quality against the planted truth, manifests, bad input."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.folders.run_folder import (
    CLASSES_SCHEMA,
    GROUPS_SCHEMA,
    MINED_SAMPLES_SCHEMA,
    PAIRS_SCHEMA,
    SWEEP_SCHEMA,
)
from fr_data.io.config import load_config, to_dict
from fr_data.io.errors import DataError
from fr_data.io.hashing import file_sha256
from fr_data.io.parquet import read_metadata, read_table
from fr_data.mining import MiningConfig, mine
from tests.fr_data.mining.planted import PlantedSpec, Truth, brute_knn, make_planted, write_emb


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    x, truth = make_planted(PlantedSpec())
    return write_emb(tmp_path_factory.mktemp("emb"), x, truth), x, truth


@pytest.fixture(scope="module", params=["exact", "candidates"])
def mined(request, planted, tmp_path_factory):
    """Both neighbour strategies: exact with the numpy reference, candidates with fr_data.knn."""
    folder, x, truth = planted
    cfg = MiningConfig()
    knn = brute_knn
    if request.param == "candidates":
        cfg.neighbours.exact_max_n = 0
        knn = None  # the default, fr_data.knn.knn_search
    res = mine(folder, tmp_path_factory.mktemp("out") / "RUN", cfg, knn=knn)
    samples = read_table(res.folder / "samples.parquet", MINED_SAMPLES_SCHEMA).to_pydict()
    classes = read_table(res.folder / "classes.parquet", CLASSES_SCHEMA).to_pydict()
    return res, samples, classes, x, truth


def _figures(samples: dict, classes: dict, truth: Truth) -> dict[str, float]:
    sus = np.array(samples["suspect_mislabel"])
    tp = (sus & truth.mislabeled).sum()
    row = {k: i for i, k in enumerate(samples["key"])}
    found = {tuple(sorted((i, row[d]))) for i, d in enumerate(samples["duplicate_of"]) if d is not None}
    planted = {tuple(sorted((i, int(d)))) for i, d in enumerate(truth.duplicate_of) if d >= 0}
    merge = dict(zip(classes["label"], classes["merge_candidate"]))
    hard = np.array([s == "hard" for s in samples["split"]])
    return {
        "mislabel_precision": tp / max(sus.sum(), 1), "mislabel_recall": tp / truth.mislabeled.sum(),
        "duplicate_precision": len(found & planted) / max(len(found), 1),
        "duplicate_recall": len(found & planted) / len(planted),
        "merge_recall": np.mean([merge[a] and merge[b] for a, b in truth.split_pairs]),
        "hard_split_ratio": truth.hard[hard].mean() / truth.hard.mean(),
    }


def test_quality_on_planted_truth(mined):
    res, samples, classes, _, truth = mined
    f = _figures(samples, classes, truth)
    print(res.run["neighbour_strategy"], {k: round(float(v), 3) for k, v in f.items()})
    assert f["mislabel_precision"] >= 0.9 and f["mislabel_recall"] >= 0.8, f
    assert f["duplicate_precision"] >= 0.95 and f["duplicate_recall"] >= 0.95, f
    assert f["merge_recall"] >= 0.9, f
    assert f["hard_split_ratio"] >= 3.0, f


def test_every_input_row_is_reported_once_in_order(mined, planted):
    res, samples, _, _, truth = mined
    assert samples["key"] == truth.keys
    assert samples["label"] == truth.labels.tolist()
    c = res.run["counts"]
    assert c["input_rows"] == c["samples_rows"] == len(truth.labels) and c["reconciled"]
    assert sum(c["split"].values()) == len(truth.labels)
    assert c["suspect_mislabel"] == sum(samples["suspect_mislabel"])


def test_center_cos_is_leave_one_out_and_margin_is_consistent(mined):
    _, samples, _, x, truth = mined
    x = x.astype(np.float16).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for i in (0, 17, 500):
        same = np.flatnonzero((truth.labels == truth.labels[i]) & (np.arange(len(x)) != i))
        rest = x[same].sum(0)
        assert samples["center_cos"][i] == pytest.approx(x[i] @ rest / np.linalg.norm(rest), abs=1e-4)
        margin = samples["center_cos"][i] - samples["nearest_other_cos"][i]
        assert samples["margin"][i] == pytest.approx(margin, abs=1e-6)


def test_pairs_are_consistent_with_the_vectors(mined):
    res, samples, _, x, _ = mined
    pairs = read_table(res.folder / "pairs.parquet", PAIRS_SCHEMA).to_pydict()
    row = {k: i for i, k in enumerate(samples["key"])}
    x = x.astype(np.float16).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert set(pairs["kind"]) == {"easy_pos", "hard_pos", "hard_neg"}
    for a, b, la, lb, cos, kind in zip(pairs["key_a"], pairs["key_b"], pairs["label_a"], pairs["label_b"],
                                       pairs["cos"], pairs["kind"]):
        assert cos == pytest.approx(x[row[a]] @ x[row[b]], abs=1e-4)
        assert (la == lb) == (kind != "hard_neg")
        assert not samples["suspect_mislabel"][row[a]] and samples["duplicate_of"][row[b]] is None


def test_run_json_metadata_config_and_sweep(mined, planted):
    res, samples, classes, _, _ = mined
    run = json.loads((res.folder / "run.json").read_text())
    assert run["inputs"]["embeddings_sha256"] == file_sha256(planted[0] / "embeddings.npy")
    assert run["model"] == {"name": "planted", "dim": 128}
    assert run["faiss_version"] and run["complete"] is True
    meta = read_metadata(res.folder / "classes.parquet")["hardmine_mining"]
    assert meta["counts"] == run["counts"] and meta["thresholds"] == run["thresholds"]
    assert to_dict(load_config(res.folder / "config.yaml", MiningConfig)) == run["config"]
    sweep = read_table(res.folder / "sweep.parquet", SWEEP_SCHEMA).to_pylist()
    default = {r["threshold"]: r["flagged"] for r in sweep if r["is_default"]}
    cfg, used = MiningConfig(), run["thresholds"]
    assert used["merge_cos"] == run["calibration"]["classes.merge_cos"]["value"]
    by_cos = [c is not None and c >= used["merge_cos"] for c in classes["nearest_cos"]]
    by_mix = [m is not None and m >= cfg.classes.merge_mix for m in classes["neighbour_mix"]]
    assert classes["merge_candidate"] == [a or b for a, b in zip(by_cos, by_mix)]
    assert default["classes.merge_cos"] == sum(by_cos) and default["classes.merge_mix"] == sum(by_mix)
    assert sum(classes["merge_candidate"]) > 0
    assert default["noise.vote_min"] == sum(samples["suspect_mislabel"])
    merge_counts = [r["flagged"] for r in sweep if r["threshold"] == "classes.merge_cos"]
    assert merge_counts == sorted(merge_counts, reverse=True)
    groups = read_table(res.folder / "groups.parquet", GROUPS_SCHEMA).to_pylist()
    assert run["groups"]["source"] == "kmeans" and len(groups) == 4
    assert sum(g["n_samples"] for g in groups) == len(samples["key"])


def test_run_json_times_the_knn_per_stage(mined):
    res, samples, classes, _, _ = mined
    t = json.loads((res.folder / "run.json").read_text())["timings"]
    n, c, d = len(samples["key"]), len(classes["label"]), 128
    # every sample against every centre, plus the centre-to-centre search (all planted rows are valid)
    assert t["centre_search"]["knn_gflop"] == pytest.approx(2 * (n + c) * c * d / 1e9, abs=1e-3)
    assert 0 < t["centre_search"]["knn_s"] <= t["centre_search"]["wall_s"]
    assert t["open"]["knn_s"] == 0 and t["open"]["knn_gflop"] == 0


def test_bins_come_from_the_index_columns(mined):
    res, samples, _, _, truth = mined
    low = [b == "low" for b in samples["resolution_bin"]]
    assert np.mean(truth.scale[low] <= 0.25) > 0.9
    assert res.run["bins"]["pose_source"] == "flip_cos"
    assert set(samples["pose_bin"]) <= {"frontal", "half", "profile"}


# ---------------------------------------------------------------------------------------------- bad input
def _small(tmp_path, **kw):
    x, truth = make_planted(PlantedSpec(identities=20, per_identity=(4, 8), split_identities=2,
                                        lookalike_pairs=2, **kw))
    return x, truth


def test_nan_zero_vectors_and_single_image_classes_are_reported(tmp_path):
    x, truth = _small(tmp_path)
    x[[3, 10]] = np.nan
    x[5] = 0.0
    truth.labels[7] = 999  # a class with a single image
    folder = write_emb(tmp_path / "emb", x, truth)
    res = mine(folder, tmp_path / "RUN", knn=brute_knn)
    c = res.run["counts"]
    assert (c["nan_vectors"], c["zero_vectors"], c["first_invalid_rows"]) == (2, 1, [3, 5, 10])
    assert c["single_image_classes"] == 1 and c["samples_in_single_image_classes"] == 1
    s = pq.read_table(res.folder / "samples.parquet").to_pydict()
    for i in (3, 5, 10):
        assert not s["vector_ok"][i] and s["center_cos"][i] is None and s["split"][i] is None
        assert s["quality_sdd"][i] is None and s["instance_fpr"][i] is None and not s["suspect_mislabel"][i]
    assert s["center_cos"][7] is None and not s["suspect_mislabel"][7]
    assert s["nearest_other_cos"][7] is not None
    assert c["split"]["None"] >= 3 and c["reconciled"]


def test_existing_run_folder_needs_overwrite_and_failures_leave_nothing(tmp_path):
    x, truth = _small(tmp_path)
    folder = write_emb(tmp_path / "emb", x, truth)
    out = tmp_path / "RUN"
    mine(folder, out, knn=brute_knn)
    first = (out / "run.json").read_text()
    with pytest.raises(DataError, match="already exists"):
        mine(folder, out, knn=brute_knn)

    def broken(*a, **kw):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        mine(folder, out, knn=broken, overwrite=True)
    assert (out / "run.json").read_text() == first  # the old run is untouched
    assert [p.name for p in tmp_path.iterdir() if "RUN" in p.name] == ["RUN"]
    stale = tmp_path / ".RUN.partial"  # left by a killed process: no run.json, cleared next time
    stale.mkdir()
    (stale / "samples.parquet").write_bytes(b"half written")
    mine(folder, out, knn=brute_knn, overwrite=True)
    assert not stale.exists() and (out / "run.json").exists() and (out / "samples.parquet").stat().st_size > 12


def test_row_mismatch_is_an_error_before_any_output(tmp_path):
    x, truth = _small(tmp_path)
    folder = write_emb(tmp_path / "emb", x, truth)
    np.save(folder / "embeddings.npy", x[:-1].astype(np.float16))
    with pytest.raises(DataError, match="index rows"):
        mine(folder, tmp_path / "RUN", knn=brute_knn)
    assert not (tmp_path / "RUN").exists()


def test_attributes_by_source_index_give_groups_and_real_yaw(tmp_path):
    x, truth = _small(tmp_path)
    folder = write_emb(tmp_path / "emb", x, truth)
    n = len(truth.labels)
    shards = tmp_path / "samples.parquet"
    pq.write_table(pa.table({"key": truth.keys,
                             "source_index": pa.array(np.arange(n) + 1, pa.int64())}), shards)
    attr = tmp_path / "attributes.parquet"
    rows = np.arange(n - 3)  # the last three images have no attributes; two attribute rows match nothing
    src = np.concatenate([rows + 1, [10_000, 10_001]])
    pq.write_table(pa.table({
        "source_index": pa.array(src, pa.int64()),
        "label": pa.array(np.concatenate([truth.labels[rows], [0, 0]]), pa.int64()),
        "yaw": pa.array(np.concatenate([truth.yaw[rows], [0, 0]]), pa.float32()),
        "group": pa.array(np.concatenate([truth.group[rows], [0, 0]]).astype(np.int8)),
        "duplicate_of": pa.array([None] * len(src), pa.int64())}), attr)
    res = mine(folder, tmp_path / "RUN", samples=shards, attributes=attr, knn=brute_knn)
    a = res.run["attributes"]
    assert a["joined_by"] == "source_index"
    assert (a["unmatched_attribute_rows"], a["samples_without_attributes"]) == (2, 3)
    assert res.run["groups"]["source"] == "attribute:attr_group"
    assert res.run["bins"]["pose_source"] == "attribute"
    s = pq.read_table(res.folder / "samples.parquet").to_pydict()
    assert s["attr_duplicate_of"][0] is None and "yaw" in s
    profile = [p == "profile" for p in s["pose_bin"]]
    assert all(abs(truth.yaw[i]) >= 60 for i in np.flatnonzero(profile))
    assert s["group"][:n - 3] == [str(g) for g in truth.group[:n - 3]] and s["group"][-1] is None


def test_no_valid_vector_at_all_still_reports_every_row(tmp_path):
    folder = tmp_path / "emb"
    folder.mkdir()
    np.save(folder / "embeddings.npy", np.full((4, 8), np.nan, np.float16))
    pq.write_table(pa.table({"key": list("abcd"), "label": pa.array([0, 0, 1, 2], pa.int64())}),
                   folder / "index.parquet")
    res = mine(folder, tmp_path / "RUN", knn=brute_knn)
    c = res.run["counts"]
    assert (c["nan_vectors"], c["classes_without_valid_vectors"], c["split"]) == (4, 3, {"None": 4})
    assert res.run["thresholds"]["unified_fpr_threshold"] is None
    classes = pq.read_table(res.folder / "classes.parquet").to_pydict()
    assert classes["n"] == [0, 0, 0] and classes["n_invalid"] == [2, 1, 1]
