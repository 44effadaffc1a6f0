"""Benchmark: ``hardmine overlap`` with the demo's trained backbone on a planted evaluation set (issue 22's goal).

    python benchmarks/bench_overlap_demo.py [--small] [--seed S] [--work DIR] [--overlap-identities K]
                                            [--leaked-images J] [--disjoint-identities D]

The README demo (``hardmine demo``; reused when ``WORK/demo`` is complete) gives the training set, its
shards and the embeddings of its trained backbone. An evaluation set is then drawn for that training set
(:func:`fr_data.synth.eval_set.generate_eval_set`: K training people in new images, J exact or near copies
of training images, D people in no training set; the truth in ``truth.parquet``) and audited with the
command as a user types it, default threshold (calibrated at ``--fpr`` 1e-5 per evaluation image), once
as an image folder (identities known) and once as the ``.bin`` pack (no identities). Scored against the
truth:

* classes: the training labels named by identity matches vs the labels of the K + J shared people
  (precision, recall);
* leaks: the J copied training images found as image matches of their copies (recall);
* disjoint people: identity or image matches of the D people in no training set (should be 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe  # noqa: E402

from fr_data.folders import overlap_folder as of  # noqa: E402
from fr_data.synth.eval_set import EVAL_PACK, IMAGES_DIR, TRUTH_FILE, EvalSetConfig, generate_eval_set  # noqa: E402
from hardmine.cli import overlap  # noqa: E402
from hardmine.pipelines.demo import demo_config, run_demo  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="the demo's small size")
    p.add_argument("--seed", type=int, help="the demo's data seed (default: the demo's own; another seed is "
                   "another data set, backbone and evaluation set)")
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--overlap-identities", type=int, default=20)
    p.add_argument("--leaked-images", type=int, default=20)
    p.add_argument("--disjoint-identities", type=int, default=40)
    return p


def score(out: Path, truth: list[dict], eval_set: str) -> dict:
    """Precision / recall of the named classes, leak recall and matches of disjoint people in ``out``."""
    rows = [r for r in of.read_overlap(out).to_pylist() if r["eval_set"] == eval_set]
    key_of = (lambda t: t["eval_path"].removeprefix(f"{IMAGES_DIR}/")) if eval_set == IMAGES_DIR \
        else (lambda t: str(t["eval_index"]))
    truth_of_key = {key_of(t): t for t in truth}
    shared = {t["train_label"] for t in truth if t["train_label"] is not None}
    named = {r["label"] for r in rows if r["match"] == "identity"}
    leaked = {(key_of(t), f"{t['train_index']:09d}") for t in truth if t["train_index"] is not None}
    found = {(r["eval_key"], r["train_key"]) for r in rows if r["match"] == "image"}
    disjoint = [r for r in rows if truth_of_key[r["eval_key"]]["train_label"] is None]
    hits = len(named & shared)
    return {"eval_set": eval_set, "classes_named": len(named), "classes_true": len(shared),
            "precision": hits / len(named) if named else 1.0, "recall": hits / len(shared) if shared else 1.0,
            "leaks_true": len(leaked), "leak_recall": len(leaked & found) / len(leaked) if leaked else 1.0,
            "disjoint_matches": len(disjoint)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_overlap_demo_"))
    cfg = demo_config("small" if args.small else "full", seed=args.seed)
    print(describe(), flush=True)
    t0 = time.perf_counter()
    run_demo(cfg, work / "demo", log=lambda line: None)
    demo_s = time.perf_counter() - t0
    eval_dir = work / "eval"
    if not (eval_dir / TRUTH_FILE).exists():
        generate_eval_set(cfg.synth, work / "demo" / "synth", eval_dir,
                          EvalSetConfig(args.overlap_identities, args.leaked_images, args.disjoint_identities))
    truth = pq.read_table(eval_dir / TRUTH_FILE).to_pylist()
    out = work / "overlap"
    t0 = time.perf_counter()
    code = overlap.main(["--embeddings", str(work / "demo" / "emb"), "--eval", str(eval_dir / IMAGES_DIR),
                         str(eval_dir / EVAL_PACK), "--out", str(out), "--overwrite"])
    if code != 0:
        return code
    audit_s = time.perf_counter() - t0
    info = json.loads((out / of.INFO_FILE).read_text())
    ident = info["thresholds"]["identity"]
    print(f"demo ({'small' if args.small else 'full'}) {demo_s:.0f} s (reused when complete); "
          f"overlap {audit_s:.1f} s; identity threshold {ident['value']:.4f} ({ident['method']}), "
          f"duplicate threshold {info['thresholds']['duplicate']['value']:.4f}")
    print("| evaluation set | classes named / true | precision | recall | leak recall | matches of disjoint people |")
    print("|---|---|---|---|---|---|")
    for name in (IMAGES_DIR, EVAL_PACK):
        s = score(out, truth, name)
        print(f"| {name} | {s['classes_named']} / {s['classes_true']} | {s['precision']:.3f} | {s['recall']:.3f} "
              f"| {s['leak_recall']:.3f} ({s['leaks_true']}) | {s['disjoint_matches']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
