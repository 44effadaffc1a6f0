"""Issue 23 goal: the DEFAULT mining config, without per-backbone tuning, on three planted backbone
geometries (``planted.GEOMETRIES``: base, tight classes with closer look-alikes, a crowded cosine scale):
mislabel P >= 0.95 and R >= 0.90, duplicates P and R >= 0.99, merges P and R >= 0.95."""

import numpy as np
import pytest

from fr_data.folders.run_folder import CLASSES_SCHEMA, MINED_SAMPLES_SCHEMA
from fr_data.io.parquet import read_table
from fr_data.mining import MiningConfig, mine
from tests.fr_data.mining.planted import GEOMETRIES, Truth, brute_knn, geometry_spec, make_planted, write_emb
from tests.golden.scenario import absolute_thresholds


def goal_figures(samples: dict, classes: dict, truth: Truth) -> dict[str, float]:
    """Precision and recall of mislabels (rows), duplicate pairs and merge-candidate labels."""
    sus = np.array(samples["suspect_mislabel"])
    tp = int((sus & truth.mislabeled).sum())
    row = {k: i for i, k in enumerate(samples["key"])}
    found = {tuple(sorted((i, row[d]))) for i, d in enumerate(samples["duplicate_of"]) if d is not None}
    planted = {tuple(sorted((i, int(d)))) for i, d in enumerate(truth.duplicate_of) if d >= 0}
    flagged = {label for label, m in zip(classes["label"], classes["merge_candidate"]) if m}
    split = {label for pair in truth.split_pairs for label in pair}
    return {
        "mislabel_precision": tp / max(int(sus.sum()), 1), "mislabel_recall": tp / int(truth.mislabeled.sum()),
        "duplicate_precision": len(found & planted) / max(len(found), 1),
        "duplicate_recall": len(found & planted) / len(planted),
        "merge_precision": len(flagged & split) / max(len(flagged), 1),
        "merge_recall": len(flagged & split) / len(split),
    }


def mine_geometry(name: str, folder, seed: int = 0, config: MiningConfig | None = None):
    """Mine the planted set of geometry ``name`` (float64 numpy k-NN: no float ties between backends)."""
    x, truth = make_planted(geometry_spec(name, seed=seed))
    res = mine(write_emb(folder / "emb", x, truth), folder / "run", config or MiningConfig(), knn=brute_knn)
    samples = read_table(res.folder / "samples.parquet", MINED_SAMPLES_SCHEMA).to_pydict()
    classes = read_table(res.folder / "classes.parquet", CLASSES_SCHEMA).to_pydict()
    return res, goal_figures(samples, classes, truth)


@pytest.fixture(scope="module", params=sorted(GEOMETRIES))
def mined(request, tmp_path_factory):
    return request.param, *mine_geometry(request.param, tmp_path_factory.mktemp(request.param))


def test_default_config_meets_the_goal_on_every_geometry(mined):
    name, res, f = mined
    print(name, {k: round(v, 3) for k, v in f.items()})
    assert f["mislabel_precision"] >= 0.95 and f["mislabel_recall"] >= 0.90, (name, f)
    assert f["duplicate_precision"] >= 0.99 and f["duplicate_recall"] >= 0.99, (name, f)
    assert f["merge_precision"] >= 0.95 and f["merge_recall"] >= 0.95, (name, f)
    assert res.run["plausibility"]["plausible"], res.run["plausibility"]


def test_run_json_says_how_every_threshold_was_obtained(mined):
    _, res, _ = mined
    cal, used = res.run["calibration"], res.run["thresholds"]
    assert {k: c["method"] for k, c in cal.items()} == {
        "duplicates.cos": "nn_distance_ratio", "classes.merge_cos": "split_half_quantile",
        "noise.margin_max": "genuine_impostor_gap"}
    assert (used["duplicate_cos"], used["merge_cos"], used["margin_max"]) == tuple(
        cal[k]["value"] for k in ("duplicates.cos", "classes.merge_cos", "noise.margin_max"))
    assert all(c["sample_size"] > 0 and c["params"] for c in cal.values())
    assert res.run["config"]["duplicates"]["cos"] == "auto"  # the config as given, not the resolved one
    png = res.folder / res.run["calibration_figure"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_old_absolute_thresholds_fail_where_the_scale_moves(tmp_path):
    """Why calibrate: the fixed cosines (merge 0.5, duplicate 0.95) flag most classes on the crowded
    geometry; the run says so."""
    res, f = mine_geometry("cone", tmp_path, config=absolute_thresholds())
    assert f["merge_precision"] < 0.5 and f["duplicate_precision"] < 0.9, f
    assert not res.run["plausibility"]["plausible"]
