"""Benchmark: ``hardmine overlap`` with the demo's trained backbone on a planted evaluation set (issue 22's goal).

    python benchmarks/bench_overlap_demo.py [--small] [--seed S] [--steps N] [--work DIR] [--fpr F] [--no-oracle] [--overlap-identities K]
                                            [--leaked-images J] [--disjoint-identities D]
                                            [--model M [--checkpoint C]]

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
* disjoint people: identity or image matches of the D people in no training set (should be 0);
* other leaks: image matches that are neither the copied training image nor one of the training set's own
  planted near-duplicates of it (those are the same photo too), i.e. false leaks.

Then, as a diagnostic of the backbone (not of the rule), the identity score the audit uses (the best
class-centre cosine) and the margin rule (best minus second-best) are scored with the **oracle threshold**
read off the truth: the lowest that lets no disjoint person through. Its recall is the most any threshold
on that score could reach on this evaluation set with no false match.

``--model M`` audits with another recogniser instead of the demo's backbone, as a user with their own model
would: the demo's training set is embedded with it (``hardmine embed --shards WORK/demo/shards --model M
--out WORK/emb_NAME``; reused when made with the same model) and the audit runs on those embeddings (``hardmine overlap
--model M``), into ``WORK/overlap_NAME``. ``M`` is anything ``hardmine embed`` takes, e.g. an ONNX file; the
one from ``benchmarks/overlap_recogniser.py`` (many synthetic people of another seed) is refused when it
was trained on the demo's own data seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe  # noqa: E402
from overlap_recogniser import check_disjoint  # noqa: E402

from fr_data.folders import overlap_folder as of  # noqa: E402
from fr_data.folders.embeddings_folder import read_run_info  # noqa: E402
from fr_data.io.errors import ConfigError  # noqa: E402
from fr_data.overlap.embedding import check_same_model, command_line_record, model_record  # noqa: E402
from fr_data.synth.dataset import plan_train  # noqa: E402
from fr_data.synth.eval_set import EVAL_PACK, IMAGES_DIR, TRUTH_FILE, EvalSetConfig, generate_eval_set  # noqa: E402
from hardmine.cli import embed, overlap  # noqa: E402
from hardmine.pipelines.demo import demo_config, run_demo  # noqa: E402
from hardmine.pipelines.stamps import read_stamp  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="the demo's small size")
    p.add_argument("--seed", type=int, help="the demo's data seed (default: the demo's own; another seed is "
                   "another data set, backbone and evaluation set)")
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--steps", type=int, help="training steps of the demo's backbone (default: the demo's, 600)")
    p.add_argument("--fpr", type=float, help="passed to hardmine overlap (default: the command's own, 1e-5)")
    p.add_argument("--overlap-identities", type=int, default=20)
    p.add_argument("--leaked-images", type=int, default=20)
    p.add_argument("--disjoint-identities", type=int, default=40)
    p.add_argument("--no-oracle", action="store_true", help="skip the oracle-threshold diagnostic")
    p.add_argument("--model", help="audit with this recogniser (anything hardmine embed takes, e.g. an ONNX "
                   "file) instead of the demo's backbone")
    p.add_argument("--checkpoint", type=Path, help="its weights, for a model name (hardmine embed --checkpoint)")
    return p


def model_args(args: argparse.Namespace) -> list[str]:
    """``--model M [--checkpoint C]`` as the embed and overlap commands take them."""
    return ["--model", args.model, *(["--checkpoint", str(args.checkpoint)] if args.checkpoint else [])]


def recogniser_seed(model: str) -> int | None:
    """The synth seed of a model made by ``overlap_recogniser.py`` (its folder's synth stamp), else None."""
    stamp = read_stamp(Path(model).parent / "stages" / "synth.json")
    return None if stamp is None else int(stamp["inputs"]["synth"]["seed"])


def training_embeddings(args: argparse.Namespace, work: Path, data_seed: int) -> Path:
    """The demo's own embeddings, or (``--model``) the demo's shards embedded with that model."""
    if args.model is None:
        return work / "demo" / "emb"
    seed = recogniser_seed(args.model)
    if seed is not None:
        check_disjoint(seed, data_seed)
    emb = work / f"emb_{Path(args.model).stem}"
    if not embedded_with(emb, args):
        code = embed.main(["--shards", str(work / "demo" / "shards"), *model_args(args), "--out", str(emb),
                           "--workers", "1", "--no-progress", "--device", "cpu", "--overwrite"])
        if code != 0:
            raise SystemExit(code)
    return emb


def embedded_with(emb: Path, args: argparse.Namespace) -> bool:
    """True when ``emb`` holds embeddings by ``--model`` (an ONNX file compared by its sha256)."""
    if not (emb / "run.json").exists():
        return False
    recorded = model_record(read_run_info(emb), emb)
    try:
        check_same_model(recorded, command_line_record(args.model, args.checkpoint, recorded), emb, args.model)
    except ConfigError:
        return False
    return True


def score(out: Path, truth: list[dict], eval_set: str, same_photo: dict[int, set[int]]) -> dict:
    """Precision / recall of the named classes, leak recall, other (false) leaks and matches of disjoint
    people in ``out``; ``same_photo``: training key -> keys of its planted near-duplicates."""
    rows = [r for r in of.read_overlap(out).to_pylist() if r["eval_set"] == eval_set]
    key_of = (lambda t: t["eval_path"].removeprefix(f"{IMAGES_DIR}/")) if eval_set == IMAGES_DIR \
        else (lambda t: str(t["eval_index"]))
    truth_of_key = {key_of(t): t for t in truth}
    shared = {t["train_label"] for t in truth if t["train_label"] is not None}
    named = {r["label"] for r in rows if r["match"] == "identity"}
    leaked = {(key_of(t), f"{t['train_index']:09d}") for t in truth if t["train_index"] is not None}
    found = {(r["eval_key"], r["train_key"]) for r in rows if r["match"] == "image"}
    disjoint = [r for r in rows if truth_of_key[r["eval_key"]]["train_label"] is None]
    copies = {(key_of(t), f"{k:09d}") for t in truth if t["train_index"] is not None
              for k in same_photo.get(t["train_index"], set())}
    hits = len(named & shared)
    return {"eval_set": eval_set, "classes_named": len(named), "classes_true": len(shared),
            "precision": hits / len(named) if named else 1.0, "recall": hits / len(shared) if shared else 1.0,
            "leaks_true": len(leaked), "leak_recall": len(leaked & found) / len(leaked) if leaked else 1.0,
            "other_leaks": len(found - leaked - copies), "duplicate_leaks": len((found - leaked) & copies),
            "disjoint_matches": len(disjoint)}


def same_photos(cfg) -> dict[int, set[int]]:
    """Training RecordIO key -> the keys of the training set's planted near-duplicates of that image."""
    plan = plan_train(cfg.synth)
    keys = plan.source_index
    out: dict[int, set[int]] = {}
    for row in np.flatnonzero(plan.duplicate_src >= 0):
        src = int(keys[plan.duplicate_src[row]])
        out.setdefault(src, set()).add(int(keys[row]))
    return out


def oracle_ceiling(work: Path, emb: Path, truth: list[dict]) -> list[str]:
    """Markdown rows: the cosine and margin scores of the embeddings ``emb``'s model at the oracle threshold
    (module docstring), per identity centre (image folder) and per image (``.bin``)."""
    import torch

    from fr_data.overlap.audit import query_centres
    from fr_data.overlap.embedding import embed_images, load_recorded_model
    from fr_data.overlap.run import open_training
    from fr_data.overlap.sources import read_eval_set

    recorded = model_record(read_run_info(emb), emb)
    model = load_recorded_model(recorded, overlap.named_models(recorded["spec"].get("embedding_size")),
                                torch.device("cpu"))
    eval_set = read_eval_set(work / "eval" / IMAGES_DIR)
    vectors = embed_images(model, eval_set, flip=recorded["flip"], device=torch.device("cpu"))
    train = open_training(emb, None)
    column = {int(train.class_labels[c]): i for i, c in enumerate(train.centres.active)}
    truth_of = {t["eval_path"].removeprefix(f"{IMAGES_DIR}/"): t for t in truth}
    label = np.array([column.get(truth_of[k]["train_label"], -1) if truth_of[k]["train_label"] is not None
                      else -1 for k in eval_set.keys])
    true = set(label[label >= 0].tolist())
    rows = []
    for level, identities in (("identity centre (images)", eval_set.identities), ("image (.bin)", None)):
        queries, of_image = query_centres(vectors, identities)
        want = np.full(len(queries), -1)
        want[of_image] = label
        sims = queries @ train.centres.db.T
        order = np.argsort(-sims, axis=1)
        best, second = np.take_along_axis(sims, order[:, :2], axis=1).T
        for name, s in (("best cosine", best), ("margin best - second", best - second)):
            cut = float(s[want < 0].max())
            named = set(order[s > cut, 0].tolist())
            hits = len(named & true)
            rows.append(f"| {level} | {name} | {cut:.3f} | {len(named)} / {len(true)} | "
                        f"{hits / len(named) if named else 1.0:.3f} | {hits / len(true):.3f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_overlap_demo_"))
    cfg = demo_config("small" if args.small else "full", seed=args.seed, steps=args.steps)
    print(describe(), flush=True)
    t0 = time.perf_counter()
    run_demo(cfg, work / "demo", log=lambda line: None)
    demo_s = time.perf_counter() - t0
    eval_dir = work / "eval"
    if not (eval_dir / TRUTH_FILE).exists():
        generate_eval_set(cfg.synth, work / "demo" / "synth", eval_dir,
                          EvalSetConfig(args.overlap_identities, args.leaked_images, args.disjoint_identities))
    truth = pq.read_table(eval_dir / TRUTH_FILE).to_pylist()
    same_photo = same_photos(cfg)
    emb = training_embeddings(args, work, cfg.synth.seed)
    name = "overlap" + ("" if args.model is None else f"_{Path(args.model).stem}")
    out = work / (name if args.fpr is None else f"{name}_fpr{args.fpr:g}")
    t0 = time.perf_counter()
    code = overlap.main(["--embeddings", str(emb), "--eval", str(eval_dir / IMAGES_DIR),
                         str(eval_dir / EVAL_PACK), "--out", str(out), "--overwrite",
                         *(model_args(args) if args.model else []),
                         *(["--fpr", str(args.fpr)] if args.fpr is not None else [])])
    if code != 0:
        return code
    audit_s = time.perf_counter() - t0
    info = json.loads((out / of.INFO_FILE).read_text())
    ident = info["thresholds"]["identity"]
    print(f"demo ({'small' if args.small else 'full'}) {demo_s:.0f} s (reused when complete); "
          f"overlap {audit_s:.1f} s; identity threshold {ident['value']:.4f} ({ident['method']}), "
          f"duplicate threshold {info['thresholds']['duplicate']['value']:.4f}")
    print("| evaluation set | classes named / true | precision | recall | leak recall | other leaks "
          "(near-duplicates of the copied image) | matches of disjoint people |")
    print("|---|---|---|---|---|---|---|")
    for name in (IMAGES_DIR, EVAL_PACK):
        s = score(out, truth, name, same_photo)
        print(f"| {name} | {s['classes_named']} / {s['classes_true']} | {s['precision']:.3f} | {s['recall']:.3f} "
              f"| {s['leak_recall']:.3f} ({s['leaks_true']}) | {s['other_leaks']} ({s['duplicate_leaks']}) "
              f"| {s['disjoint_matches']} |")
    if args.no_oracle:
        return 0
    print("\nOracle threshold (the lowest with no disjoint person above it, read off the truth):")
    print("| query | score | oracle threshold | classes named / true | precision | recall |")
    print("|---|---|---|---|---|---|")
    print("\n".join(oracle_ceiling(work, emb, truth)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
