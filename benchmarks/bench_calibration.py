"""Benchmark: mining with the DEFAULT (calibrated) config on planted embeddings of three backbone geometries,
side by side with cleanlab 2.9 on the same embeddings (issue 23).

    python benchmarks/bench_calibration.py [--seeds 0 1 2] [--no-cleanlab]

For each geometry of ``tests/fr_data/mining/planted.py`` (``GEOMETRIES``: base, tight, cone) and seed, prints
mislabel, duplicate and merge precision / recall of ``hardmine mine`` with ``MiningConfig()`` (no tuning),
the thresholds it calibrated, the same figures with the old absolute thresholds (merge 0.5, duplicate 0.95,
margin 0), and cleanlab's ``Datalab`` label and near-duplicate issues from the same vectors (features, its
defaults: k-NN with k=10, near duplicates closer than 0.13 x the median nearest-neighbour distance;
see ``cleanlab_figures``).
cleanlab is a benchmark-only dependency (``pip install cleanlab==2.9.0``); without it, its columns are
skipped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fr_data.mining.planted import GEOMETRIES, Truth, geometry_spec, make_planted
from tests.fr_data.mining.test_geometries import mine_geometry
from tests.golden.scenario import absolute_thresholds


def cleanlab_figures(x: np.ndarray, truth: Truth, k: int = 10) -> dict[str, float]:
    """cleanlab 2.9's Datalab label and near-duplicate checks from features, run through the same library
    calls Datalab makes (``Datalab`` itself needs the ``cleanlab[datalab]`` extra, i.e. HuggingFace
    ``datasets``): the label check is ``LabelIssueManager.find_issues`` with features (k-NN classifier,
    k = 10, out-of-sample probabilities, ``CleanLearning.find_label_issues``), the near-duplicate check
    ``NearDuplicateIssueManager.find_issues`` (k-NN graph, pairs closer than 0.13 x the median NN distance)."""
    from cleanlab.classification import CleanLearning
    from cleanlab.datalab.internal.issue_manager.duplicate import NearDuplicateIssueManager
    from cleanlab.internal.neighbor.knn_graph import create_knn_graph_and_index
    from sklearn.neighbors import KNeighborsClassifier

    feats = x.astype(np.float16).astype(np.float32)
    _, labels = np.unique(truth.labels, return_inverse=True)
    knn = KNeighborsClassifier(n_neighbors=k + 1).fit(feats, labels)
    one_hot = np.eye(labels.max() + 1)[labels]
    pred_probs = (knn.predict_proba(feats) - one_hot / (k + 1)) * (k + 1) / k
    sus = CleanLearning().find_label_issues(labels=labels, pred_probs=pred_probs)["is_label_issue"].to_numpy()
    tp = int((sus & truth.mislabeled).sum())
    graph, _ = create_knn_graph_and_index(feats, n_neighbors=k)
    median = max(float(np.median(graph.data.reshape(len(feats), -1)[:, 0])), 1e-8)
    sets = NearDuplicateIssueManager._neighbors_within_radius(graph, 0.13, median)
    found = {tuple(sorted((i, int(j)))) for i, s in enumerate(sets) for j in s}
    planted = {tuple(sorted((i, int(d)))) for i, d in enumerate(truth.duplicate_of) if d >= 0}
    return {"mislabel_precision": tp / max(int(sus.sum()), 1), "mislabel_recall": tp / int(truth.mislabeled.sum()),
            "duplicate_precision": len(found & planted) / max(len(found), 1),
            "duplicate_recall": len(found & planted) / len(planted)}


def _pr(f: dict[str, float], what: str) -> str:
    p, r = f.get(f"{what}_precision"), f.get(f"{what}_recall")
    return "–" if p is None else f"{p:.3f} / {r:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--no-cleanlab", action="store_true")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", module="cleanlab")  # per-class "too few examples" notes
    try:
        import cleanlab
        clean = None if args.no_cleanlab else cleanlab.__version__
    except ImportError:
        clean = None
    print(f"cleanlab: {clean or 'not run'}")
    print("| geometry | seed | rows | mislabel P / R | duplicate P / R | merge P / R | calibrated dup cos, merge cos, "
          "margin | absolute thresholds: mislabel, duplicate, merge P / R | cleanlab mislabel P / R | "
          "cleanlab duplicate P / R |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench_calibration_") as tmp:
        for name in GEOMETRIES:
            for seed in args.seeds:
                res, f = mine_geometry(name, Path(tmp) / f"{name}{seed}", seed=seed)
                _, old = mine_geometry(name, Path(tmp) / f"{name}{seed}abs", seed=seed, config=absolute_thresholds())
                cal = res.run["calibration"]
                thr = ", ".join(f"{cal[k]['value']:.4f}" for k in ("duplicates.cos", "classes.merge_cos",
                                                                   "noise.margin_max"))
                cl = {}
                if clean:
                    x, truth = make_planted(geometry_spec(name, seed=seed))
                    cl = cleanlab_figures(x, truth)
                print(f"| {name} | {seed} | {res.run['counts']['input_rows']} | {_pr(f, 'mislabel')} | "
                      f"{_pr(f, 'duplicate')} | {_pr(f, 'merge')} | {thr} | {_pr(old, 'mislabel')}; "
                      f"{_pr(old, 'duplicate')}; {_pr(old, 'merge')} | {_pr(cl, 'mislabel')} | "
                      f"{_pr(cl, 'duplicate')} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
