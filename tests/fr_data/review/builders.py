"""A small mining run with real shards for the review-page tests.

``make_review_run(tmp)`` writes the tiny data set of ``tests/fr_train/data/builders.py`` (6 classes x 6
images; suspects (0, 3), (1, 4); duplicates (2, 1) of (2, 0) same_class and (3, 2) of (4, 2)
cross_class; classes 4 and 5 merge candidates of each other; 5 pairs per class) with seeded random
scores in every numeric column (so rankings have no ties), plus ``groups.parquet``, ``sweep.parquet``
and a ``run.json`` with counts, thresholds, timings and config.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.folders.run_folder import (
    CLASSES_SCHEMA,
    GROUPS_SCHEMA,
    MINED_SAMPLES_SCHEMA,
    PAIRS_SCHEMA,
    SWEEP_SCHEMA,
)
from fr_data.io.parquet import read_table, write_table
from tests.fr_train.data.builders import TinyData, make_tiny_data


def _with(table: pa.Table, **columns) -> pa.Table:
    for name, values in columns.items():
        i = table.column_names.index(name)
        table = table.set_column(i, table.schema.field(name), pa.array(values, table.schema.field(name).type))
    return table


def randomise_samples(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    n = table.num_rows
    centre = rng.uniform(0.1, 0.9, n).astype(np.float32)
    other = rng.uniform(0.0, 0.6, n).astype(np.float32)
    dup = np.asarray(table.column("duplicate_of").is_valid())
    labels = np.asarray(table.column("label"))
    return _with(table, center_cos=centre, nearest_other_cos=other, margin=centre - other,
                 nearest_other_label=(labels + 1) % 6, knn_agreement=rng.uniform(0, 1, n).astype(np.float32),
                 duplicate_cos=np.where(dup, rng.uniform(0.95, 1.0, n), np.nan).astype(np.float32).tolist(),
                 quality_cr=rng.uniform(0.2, 1.5, n).astype(np.float32),
                 quality_sdd=rng.uniform(0, 100, n).astype(np.float32),
                 difficulty=rng.uniform(0, 1, n).astype(np.float32),
                 instance_fpr=rng.uniform(0, 1e-3, n).astype(np.float32),
                 group=[["A", "B"][i % 2] for i in range(n)])


def run_json(samples: pa.Table, classes: pa.Table) -> dict:
    s = samples.to_pydict()
    return {"counts": {"input_rows": len(s["key"]), "suspect_mislabel": sum(s["suspect_mislabel"]),
                       "duplicates_same_class": s["duplicate_kind"].count("same_class"),
                       "duplicates_cross_class": s["duplicate_kind"].count("cross_class"),
                       "merge_candidate_classes": sum(classes.column("merge_candidate").to_pylist())},
            "thresholds": {"duplicate_cos": 0.95, "target_fpr": 1e-4},
            "timings": {"centres": {"wall_s": 0.5, "peak_rss_mb": 100.0}},
            "config": {"seed": 0, "noise": {"vote_min": 0.5}},
            "samples_manifest": "elsewhere/samples.parquet"}


def name_files(manifest: Path) -> None:
    """Fill a shard manifest's provenance columns as an identity folder's would be: label L's images are
    ``idL/KEY.jpg`` of identity ``idL`` (two digits)."""
    table = pq.read_table(manifest)  # the shard writer's columns and metadata, as they are
    keys, labels = table.column("key").to_pylist(), table.column("label").to_pylist()
    pq.write_table(_with(table, source_path=[f"id{v:02d}/{k}.jpg" for k, v in zip(keys, labels)],
                         identity=[f"id{v:02d}" for v in labels]), manifest)


def make_review_run(tmp: Path, seed: int = 0, named: bool = False) -> TinyData:
    """Write the run (``tmp/run``) and its shards (``tmp/shards``); see the module docstring. ``named``:
    the shard manifest names each image's file (:func:`name_files`)."""
    data = make_tiny_data(Path(tmp))
    if named:
        name_files(data.shards / "samples.parquet")
    rng = np.random.default_rng(seed)
    samples = randomise_samples(read_table(data.run / "samples.parquet", MINED_SAMPLES_SCHEMA), rng)
    write_table(samples, data.run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    classes = read_table(data.run / "classes.parquet", CLASSES_SCHEMA)
    classes = _with(classes, neighbour_mix=rng.uniform(0, 1, classes.num_rows).astype(np.float32))
    write_table(classes, data.run / "classes.parquet", CLASSES_SCHEMA)
    pairs = read_table(data.run / "pairs.parquet", PAIRS_SCHEMA)
    pairs = _with(pairs, cos=rng.uniform(-0.2, 0.9, pairs.num_rows).astype(np.float32))
    write_table(pairs, data.run / "pairs.parquet", PAIRS_SCHEMA)
    groups = pa.table({"group": ["A", "B"], "source": ["kmeans"] * 2, "n_samples": [18, 18], "n_classes": [6, 6],
                       "fpr": [2e-4, 5e-5], "fpr_ratio": [1.6, 0.4]})
    write_table(groups, data.run / "groups.parquet", GROUPS_SCHEMA)
    sweep = pa.table({"threshold": ["duplicates.cos"], "value": [0.95], "flagged": [2], "unit": ["samples"],
                      "is_default": [True]})
    write_table(sweep, data.run / "sweep.parquet", SWEEP_SCHEMA)
    (data.run / "run.json").write_text(json.dumps(run_json(samples, classes)))
    return data


LIST_BLOCK = re.compile(r'<script type="application/json" data-block="list:[^"]*">(.*?)</script>', re.DOTALL)
HTML_BLOCK = re.compile(r'<script type="application/json" data-block="html:[^"]*">(.*?)</script>', re.DOTALL)


STRIPS_BLOCK = re.compile(r'<script type="application/json" data-block="strips">(.*?)</script>', re.DOTALL)
STRIP = re.compile(r'<div class="imgs ([a-z]+)" data-central="([^"]*)"></div>')


def expand_lists(text: str) -> str:
    """The page's HTML with each lazy list's item HTML blocks replaced by the items' HTML, central image
    strips filled in (what the page's script renders), for tests that read the items with Python."""
    found = STRIPS_BLOCK.search(text)
    strips = json.loads(found.group(1)) if found else {}
    items = HTML_BLOCK.sub(lambda m: "".join(json.loads(m.group(1))), LIST_BLOCK.sub("", STRIPS_BLOCK.sub("", text)))
    return STRIP.sub(lambda m: f'<div class="imgs {m.group(1)}">{strips.get(m.group(2), "")}</div>', items)


def synthetic_page(n: int, seed: int = 0):
    """A review page's data with ``n`` suspects, ``n`` duplicates and ``n`` low-quality images (labels of
    4 images each, 4 central images per label, ``n // 100`` merge pairs), seeded random scores, no run
    folder: for the tests and the benchmark of the page at size (``render(synthetic_page(n))``)."""
    from fr_data.review.page import PageData, queries
    from fr_data.review.select import Picks

    rng = np.random.default_rng(seed)
    labels = max(2, n // 4)

    def score() -> float:
        return round(float(rng.uniform(-1, 1)), 4)

    rows = {
        "suspects": [{"key": f"s{i:06d}", "label": i % labels, "suspected_label": (i + 1) % labels,
                      "center_cos": score(), "margin": score(), "knn_agreement": score()} for i in range(n)],
        "duplicates": [{"key": f"d{i:06d}", "label": i % labels, "duplicate_of": f"t{i:06d}",
                        "twin_label": (i + 7) % labels, "duplicate_cos": score(),
                        "duplicate_kind": ("same_class", "cross_class")[i % 2]} for i in range(n)],
        "merges": [{"label": 2 * i, "other_label": 2 * i + 1, "nearest_cos": score(), "neighbour_mix": score(),
                    "n": 4, "other_n": 4} for i in range(max(1, n // 100))],
        "quality": [{"key": f"q{i:06d}", "label": i % labels, "quality_cr": score(), "quality_sdd": score(),
                     "difficulty": score(), "pose_bin": ("frontal", "profile")[i % 2],
                     "resolution_bin": ("high", "low")[i % 3 == 0]} for i in range(n)],
    }
    central = {label: [f"c{label}_{j}" for j in range(4)] for label in range(labels)}
    totals = {"samples": 4 * labels, "valid_vectors": 4 * labels, "classes": labels, "suspects": n,
              "duplicates": n, "cross_class_duplicates": n // 2, "merges": len(rows["merges"]),
              "merge_candidate_classes": 2 * len(rows["merges"]), "quality": n, "hard_pos": 0, "hard_neg": 0}
    picks = Picks(n, rows=rows, central=central, totals=totals, queries=queries())
    return PageData("synthetic", "synthetic", picks, data_id=f"synthetic-{n}-{seed}")
