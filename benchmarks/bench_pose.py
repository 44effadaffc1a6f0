"""Benchmark: does the pose estimate see pose? Landmark yaw (``embed --pose``) beside ``flip_cos``
on synthetic faces.

    python benchmarks/bench_pose.py [--small] [--work DIR] [--seed S]

Runs the demo pipeline (``hardmine.pipelines.demo``: synth -> shards -> train -> embed -> mine; reused
when ``--work`` already holds a complete run), embeds its shards again with the demo backbone and
``pose=`` the landmark estimator (:mod:`fr_data.embed.pose`, what ``hardmine embed --pose`` does) into
``WORK/emb_pose``, joins every sample to the synthetic ground truth (``yaw``, ``roll``, ``scale`` of
``attributes.parquet``) and prints, for the landmark yaw and for the embedding proxy ``flip_cos`` (the
mining fallback):

* Spearman with |yaw| (flip_cos should be negative, landmark |yaw| positive) and, for the landmarks,
  with the signed yaw and roll;
* bin accuracy: the share of samples whose pose bin (mining's default edges: |yaw| 30 / 60 degrees,
  flip_cos 0.7 / 0.85) equals the bin of the true |yaw|, and the recall of each true bin;
* how often dlib's own frontal face detector finds a face in the crop (a sign of whether the landmark
  model, trained on real faces, sees the synthetic ones at all).

Rows: all samples, full-resolution samples only (``scale == 1``), and the samples in which dlib's
detector finds a face.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _demo_args import demo_parser  # noqa: E402
from _machine import describe  # noqa: E402

from fr_data.embed.pose import load_landmark_pose, to_uint8_rgb  # noqa: E402
from fr_data.embed.run import embed_folder  # noqa: E402
from fr_data.folders import embeddings_folder as ef  # noqa: E402
from fr_data.folders.shard_folder import read_samples  # noqa: E402
from fr_data.io.parquet import read_table  # noqa: E402
from fr_data.loading.decode import decode_face  # noqa: E402
from fr_data.mining.config import BinConfig  # noqa: E402
from fr_data.mining.groundtruth import spearman  # noqa: E402
from fr_data.mining.splits import POSE_BINS_BY_YAW, pose_bins_from_flip, pose_bins_from_yaw  # noqa: E402
from fr_data.synth.dataset import ATTRIBUTES_SCHEMA  # noqa: E402
from hardmine.pipelines.demo import Layout, demo_config, run_demo, train_config  # noqa: E402
from hardmine.pipelines.stages import load_backbone, trained_weights  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = demo_parser(__doc__)
    return p


def embed_with_pose(cfg, layout: Layout, out: Path) -> float:
    """Embed the demo shards with the landmark pose estimate into ``out`` (reused when complete); seconds."""
    if (out / ef.RUN_FILE).exists():
        return float("nan")
    estimator = load_landmark_pose()
    model, spec = load_backbone(train_config(cfg, layout), trained_weights(layout))
    started = time.perf_counter()
    embed_folder(model, layout.shards, out, batch_size=cfg.embed_batch, spec=spec, progress=False,
                 pose=estimator, pose_spec=estimator.describe())
    return time.perf_counter() - started


def joined(out: Path, layout: Layout) -> dict[str, np.ndarray]:
    """Per embedded sample: estimated yaw / roll, flip_cos, and the true yaw / roll / scale."""
    index = ef.read_index(out)
    manifest = read_samples(layout.shards, columns=["key", "source_index"])
    source = dict(zip(manifest.column("key").to_pylist(), manifest.column("source_index").to_pylist()))
    truth = read_table(layout.synth / "attributes.parquet", ATTRIBUTES_SCHEMA,
                       columns=["source_index", "yaw", "roll", "scale"])
    row = {s: i for i, s in enumerate(truth.column("source_index").to_pylist())}
    rows = pa.array([row[source[k]] for k in index.column("key").to_pylist()])
    t = truth.take(rows)

    def floats(table: pa.Table, name: str) -> np.ndarray:
        return table.column(name).cast(pa.float64()).fill_null(np.nan).to_numpy()

    return {"key": np.asarray(index.column("key").to_pylist()),
            "yaw_est": floats(index, "yaw"), "roll_est": floats(index, "roll"),
            "flip_cos": floats(index, "flip_cos"),
            "yaw": floats(t, "yaw"), "roll": floats(t, "roll"), "scale": floats(t, "scale")}


def detector_hits(layout: Layout, keys: np.ndarray) -> np.ndarray:
    """Per crop: does dlib's frontal face detector (image doubled) find a face?"""
    import dlib

    from fr_data.loading.shard_index import ShardIndex
    detector = dlib.get_frontal_face_detector()
    shards = ShardIndex.open(layout.shards)
    try:
        hits = [len(detector(to_uint8_rgb(decode_face(shards.read_image(str(k)))[None])[0], 1)) > 0
                for k in keys]
    finally:
        shards.close()
    return np.asarray(hits, bool)


def bin_scores(predicted: np.ndarray, true_bins: np.ndarray) -> tuple[float, dict[str, float]]:
    """Accuracy and per-true-bin recall of predicted pose bins."""
    recall = {b: float(np.mean(predicted[true_bins == b] == b)) if (true_bins == b).any() else float("nan")
              for b in POSE_BINS_BY_YAW}
    return float(np.mean(predicted == true_bins)), recall


def table(d: dict[str, np.ndarray], bins: BinConfig, subsets: dict[str, np.ndarray]) -> str:
    """The markdown table of the module docstring."""
    lines = ["| samples | n | estimate | Spearman with \\|yaw\\| | bin accuracy "
             "| recall frontal / half / profile |",
             "|---|---:|---|---:|---:|---|"]
    for name, keep in subsets.items():
        truth = pose_bins_from_yaw(d["yaw"][keep], bins.yaw_edges)
        for label, est, predicted in (
                ("landmarks \\|yaw\\|", np.abs(d["yaw_est"][keep]),
                 pose_bins_from_yaw(d["yaw_est"][keep], bins.yaw_edges)),
                ("flip_cos", d["flip_cos"][keep],
                 pose_bins_from_flip(d["flip_cos"][keep], bins.flip_cos_edges))):
            accuracy, recall = bin_scores(predicted, truth)
            rho = spearman(est, np.abs(d["yaw"][keep]))
            recalls = " / ".join(f"{recall[b]:.2f}" for b in POSE_BINS_BY_YAW)
            n = int(keep.sum())
            lines.append(f"| {name} | {n} | {label} | {rho:+.3f} | {accuracy:.3f} | {recalls} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = demo_config("small" if args.small else "full", seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_pose_") as tmp:
        work = args.work or Path(tmp) / "demo"
        run_demo(cfg, work, log=lambda line: None)
        layout = Layout(work)
        seconds = embed_with_pose(cfg, layout, work / "emb_pose")
        d = joined(work / "emb_pose", layout)
        bins = BinConfig()
        print(f"machine: {describe()}")
        print(f"data: {len(d['yaw'])} synthetic images (demo size {'small' if args.small else 'full'}, "
              f"seed {cfg.synth.seed}); true |yaw| >= 60: {np.mean(np.abs(d['yaw']) >= 60):.3f}")
        print(f"embed --pose: {seconds:.1f} s ({len(d['yaw']) / seconds:.1f} img/s)" if np.isfinite(seconds)
              else "embed --pose: reused")
        seen = detector_hits(layout, d["key"])
        print(table(d, bins, {"all": np.ones(len(seen), bool), "full resolution": d["scale"] >= 1,
                              "dlib's detector finds the face": seen}))
        full = d["scale"] >= 1
        print(f"landmarks, full resolution: Spearman with signed yaw "
              f"{spearman(d['yaw_est'][full], d['yaw'][full]):+.3f}, with roll "
              f"{spearman(d['roll_est'][full], d['roll'][full]):+.3f}; "
              f"median |estimate| where true |yaw| >= 60: "
              f"{np.median(np.abs(d['yaw_est'][full & (np.abs(d['yaw']) >= 60)])):.1f} degrees")
        print(f"dlib's frontal detector finds a face in {seen.mean():.3f} of the crops "
              f"({seen[np.abs(d['yaw']) < 30].mean():.3f} at true |yaw| < 30)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
