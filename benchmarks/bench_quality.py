"""Benchmark: which quality score finds the pairs a face model will fail? Error-versus-discard curves (issue 13).

    python benchmarks/bench_quality.py --seed 1 --split validation [--size full] [--work DIR] [--set key=value ...]
    python benchmarks/bench_quality.py --seed 0 --split test --size full --bin extra.bin ...
    python benchmarks/bench_quality.py --seed 2 --split test --size full --pack-pairs 4000 --crossfit 2 --tag crossfit2

For one synthetic data set (``--seed``, ``--size`` a size of the demo: ``small`` by default, ``full`` for
the figures in docs/benchmarks.md) it runs the demo pipeline (``hardmine.pipelines.demo``: synth ->
shards -> recognition backbone -> embeddings -> mining run, reused when complete), trains the SDD-FIQA
regressor on the mining run's ``quality_sdd`` pseudo-labels (``configs/sdd_fiqa_synth.yaml`` pointed at
that run, initialised from the recognition backbone; ``--set`` overrides its keys), then scores every
image of the held-out verification packs and of any ``--bin`` pack with

* ``regressor``: the SDD-FIQA regressor (:func:`fr_train.objective.quality.load_quality_model`);
* ``feature_norm``: ``||f(x)||`` of the recognition backbone (the MagFace / AdaFace quality proxy);
* ``flip_consistency``: ``cos(f(x), f(flip x))``;
* ``random``: uniform random qualities (seeded; the curve is the mean of ``--draws`` draws);
* ``ground_truth`` (synthetic packs only, the ceiling): ``min(1 / downsample, cos(yaw))`` from the capture
  parameters the pack was rendered with (:func:`fr_data.synth.packs.pack_variations`),

and compares their error-versus-discard curves (:func:`fr_train.evaluation.erc.erc`: threshold fixed at FMR
``--fmr`` over all impostor pairs, pair quality = the minimum of the two images', the lowest-quality
genuine pairs discarded) by the area under the curve over reject fractions 0, 0.01, ..., 0.95 (trapezoid
rule; the last 5% are left out because a 600-pair pack then keeps fewer than 15 genuine pairs), and by the
partial area over 0-0.20 (the ISO/IEC 29794-1 style pAUC; Schlett et al., https://arxiv.org/abs/2303.13294,
find rankings steadier with the larger limit, hence the full curve first). ``oracle`` (discard the
genuine pairs of lowest similarity first) bounds what any quality score could reach. Writes
``OUT/erc_<split>_seed<S>.png`` and ``.json`` and prints a markdown table.

``--pack-pairs N`` scores packs of N pairs from another synth seed instead of the data set's own 600-pair
packs; ``--crossfit F`` trains the regressor on out-of-fold pseudo-labels (:func:`crossfit_labels`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
import torch
from _machine import describe
from torch import nn

from fr_data.embed.forward import embed_batch, quality_batch
from fr_data.folders import run_folder as rf
from fr_data.formats.verification import check_images, decode_pack, load_bin
from fr_data.io.config import deep_merge
from fr_data.synth import PACKS, SynthConfig, generate_packs
from fr_data.synth.packs import pack_variations
from fr_train.checkpoints.resume import CheckpointStore, read_state
from fr_train.config import TrainConfig, load_train_config, parse_overrides
from fr_train.evaluation.erc import ErcCurve, erc, pair_quality
from fr_train.objective.quality import load_quality_model
from fr_train.trainer import run as train_run
from hardmine.pipelines.demo import (
    DEMO_SIZES,
    Layout,
    demo_config,
    embed_stage,
    mine_stage,
    shard_stage,
    synth_stage,
    train_config,
    train_stage,
    with_overrides,
)
from hardmine.pipelines.stages import Stamper, load_backbone, trained_weights  # noqa: E402

FRACTIONS = np.round(np.arange(0, 0.9501, 0.01), 2)
PARTIAL = 0.2
METHODS = ("regressor", "feature_norm", "flip_consistency", "random", "ground_truth", "oracle")
COLOURS = {"regressor": "tab:red", "feature_norm": "tab:blue", "flip_consistency": "tab:green",
           "random": "tab:gray", "ground_truth": "black", "oracle": "tab:purple"}


@dataclass
class PackScores:
    """One verification pack scored: pair similarities, genuine flags, per-image quality by method."""

    name: str
    scores: np.ndarray
    issame: np.ndarray
    quality: dict[str, np.ndarray] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- pipeline
def prepare(size: str, seed: int, work: Path, mislabel_rate: float | None = None) -> tuple[Any, Layout]:
    """The demo's data, recognition backbone, embeddings and mining run for ``seed`` (reused when complete);
    ``mislabel_rate`` replaces the synthetic set's share of mislabelled images (its own folder)."""
    cfg = demo_config(size, seed=seed)
    suffix = ""
    if mislabel_rate is not None:
        cfg = replace(cfg, synth=replace(cfg.synth, mislabel_rate=mislabel_rate))
        suffix = f"_mislabel{mislabel_rate:g}"
    layout = Layout(work / f"{size}_seed{seed}{suffix}")
    layout.out.mkdir(parents=True, exist_ok=True)
    run_stages((synth_stage, shard_stage, train_stage, embed_stage, mine_stage), cfg, layout, f"seed {seed}")
    return cfg, layout


def run_stages(stages: tuple[Any, ...], cfg: Any, layout: Layout, label: str) -> None:
    """Run (or reuse) demo ``stages`` in order, printing each one's time."""
    stamper = Stamper(layout, log=print, tag=label)
    for stage in stages:
        started = time.perf_counter()
        result = stage(cfg, layout, stamper)
        print(f"[{label}] {result.name}: {'reused' if result.skipped else f'{time.perf_counter() - started:.0f} s'}",
              flush=True)


def crossfit_labels(cfg: Any, layout: Layout, folds: int = 2) -> Path:
    """Out-of-fold ``quality_sdd``: a mining run folder equal to the seed's own but for that column, where
    each image's pseudo-label comes from a recognition backbone that never saw its identity.

    The identities are split by ``label % folds``; fold f's backbone is the demo's recipe trained on the
    other folds' images only; it embeds every image and a mining run over its embeddings gives the
    pseudo-labels of fold f's images (their intra-class similarities are those of unseen people, their
    negatives as usual). A backbone trained on an image scores it by how well it was memorised, which
    mostly singles out label errors; an unseen person's image is scored by how recognisable it is.
    Written once to ``OUT/mined_crossfit<folds>`` (reused when complete).
    """
    target = layout.out / f"mined_crossfit{folds}"
    if (target / "samples.parquet").is_file():
        return target
    labels: dict[str, float] = {}
    for fold in range(folds):
        flayout = Layout(layout.out / f"crossfit{folds}" / f"fold{fold}")
        flayout.out.mkdir(parents=True, exist_ok=True)
        for name in ("synth", "shards"):
            link = flayout.out / name
            if not link.exists():
                link.symlink_to(getattr(layout, name).resolve(), target_is_directory=True)
        fcfg = with_overrides(cfg, train_overrides={"data": {"selection": {"where": f"label % {folds} <> {fold}"}}})
        run_stages((train_stage, embed_stage, mine_stage), fcfg, flayout, f"crossfit fold {fold}")
        table = rf.read(flayout.mined, "samples", columns=["key", "label", "quality_sdd"]).to_pydict()
        labels.update({k: q for k, lab, q in zip(table["key"], table["label"], table["quality_sdd"])
                       if lab % folds == fold})
    samples = rf.read(layout.mined, "samples")
    column = pa.array([labels.get(k) for k in samples.column("key").to_pylist()], pa.float32())
    samples = samples.set_column(samples.schema.get_field_index("quality_sdd"), "quality_sdd", column)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(layout.mined, partial)
    report = {"crossfit": {"folds": folds, "source": str(layout.mined)}}
    rf.write(partial, "samples", samples, report)
    partial.rename(target)
    return target


def regressor_config(cfg: Any, layout: Layout, overrides: dict[str, Any], tag: str,
                     run: Path | None = None) -> TrainConfig:
    """``configs/sdd_fiqa_synth.yaml`` pointed at this seed's shards, mining run (or ``run``: the same
    with other pseudo-labels) and recognition backbone."""
    backbone = trained_weights(layout)
    paths = {"data": {"shards": str(layout.shards), "run": str(run or layout.mined), "seed": cfg.synth.seed},
             "model": {"weights": str(backbone)},
             "train": {"output": str(layout.out / f"sdd_fiqa_{tag}"), "progress": False}}
    return load_train_config(ROOT / "configs" / "sdd_fiqa_synth.yaml", deep_merge(paths, overrides))


def train_regressor(tcfg: TrainConfig) -> Path:
    """Train (or resume) the regressor; reuse a finished run of the same resolved config."""
    store = CheckpointStore(Path(tcfg.train.output) / "checkpoints")
    latest = store.latest()
    done = latest is not None and read_state(latest).step >= (tcfg.train.max_steps or 0)
    if done and load_train_config(latest / "config.yaml") == tcfg:
        return latest
    if latest is not None and load_train_config(latest / "config.yaml") != tcfg:
        raise SystemExit(f"{tcfg.train.output} holds a regressor of another config: use another --tag")
    started = time.perf_counter()
    result = train_run(tcfg, resume=True)
    print(f"regressor: {result.state.step} steps in {time.perf_counter() - started:.0f} s", flush=True)
    return result.checkpoint


# ------------------------------------------------------------------------------------------- scoring
@torch.no_grad()
def score_pack(path: Path, backbone: nn.Module, regressor: nn.Module, batch: int = 128) -> PackScores:
    """Pair cosines of flip-sum embeddings, and per image the regressor, feature norm and flip cosine."""
    pack = load_bin(path)
    check_images(pack)
    images = decode_pack(pack)
    feats, norms, flips, quality = [], [], [], []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        out = embed_batch(backbone, chunk, flip=True)
        feats.append(out.features)
        norms.append(out.norm)
        flips.append(out.flip_cos)
        quality.append(quality_batch(regressor, chunk))
    feats = torch.cat(feats).double()
    scores = (feats[0::2] * feats[1::2]).sum(dim=1).numpy()
    q = {"regressor": torch.cat(quality).numpy(), "feature_norm": torch.cat(norms).numpy(),
         "flip_consistency": torch.cat(flips).numpy()}
    return PackScores(path.stem, scores, np.asarray(pack.issame, bool), q)


def ground_truth_quality(seed: int, name: str, pairs: int) -> np.ndarray:
    """Per image ``min(1 / downsample, cos(yaw))``: the capture's resolution and pose, from the pack's plan."""
    index, spec = next((i, s) for i, s in enumerate(PACKS) if s.name == name)
    var = pack_variations(seed, index, spec, pairs)
    return np.minimum(1.0 / var.downsample, np.cos(np.radians(var.yaw)))


def curves(pack: PackScores, fmr: float, draws: int, seed: int) -> dict[str, ErcCurve]:
    """The ERC of every method of ``pack`` (random: the mean curve of ``draws`` seeded draws)."""
    out = {m: erc(pack.scores, pack.issame, pair_quality(q), fmr, FRACTIONS) for m, q in pack.quality.items()}
    rng = np.random.default_rng([seed, 13])
    randoms = [erc(pack.scores, pack.issame, pair_quality(rng.random(2 * len(pack.scores))), fmr, FRACTIONS)
               for _ in range(draws)]
    first = randoms[0]
    fnmr = np.mean([c.fnmr for c in randoms], axis=0)
    out["random"] = ErcCurve(first.fractions, fnmr, first.discarded, first.threshold, first.fmr,
                             first.achieved_fmr, float(np.mean([c.area for c in randoms])), first.num_genuine,
                             first.num_impostor)
    out["random_std"] = float(np.std([c.area for c in randoms]))
    out["oracle"] = erc(pack.scores, pack.issame, pack.scores, fmr, FRACTIONS)  # lowest similarity first
    return {m: out[m] for m in (*METHODS, "random_std") if m in out}


def partial_area(curve: ErcCurve, limit: float = PARTIAL) -> float:
    """Trapezoid area of ``curve`` over its fractions up to ``limit``."""
    keep = curve.fractions <= limit + 1e-9
    r, f = curve.fractions[keep], curve.fnmr[keep]
    return float(np.sum(np.diff(r) * (f[1:] + f[:-1]) / 2))


# ------------------------------------------------------------------------------------------- reporting
def figure(results: dict[str, dict[str, ErcCurve]], title: str, path: Path) -> None:
    """One panel per pack: FNMR against the discarded fraction, one line per method."""
    cols = min(3, len(results))
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.ravel()[len(results):]:
        ax.set_visible(False)
    for ax, (name, by_method) in zip(axes.ravel(), results.items()):
        for method in METHODS:
            if method in by_method:
                c = by_method[method]
                ax.plot(c.fractions, c.fnmr, color=COLOURS[method], lw=2 if method == "regressor" else 1.3,
                        ls={"random": "--", "ground_truth": "--", "oracle": ":"}.get(method, "-"),
                        label=f"{method} (AUC {c.area:.4f})")
        ax.set_title(f"{name}: FMR {by_method['random'].fmr:g} (threshold {by_method['random'].threshold:.3f})",
                     fontsize=9)
        ax.axvline(PARTIAL, color="0.7", lw=0.8)
        ax.set_xlabel("fraction of genuine pairs discarded (lowest quality first)")
        ax.set_ylabel("FNMR")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fnmr_at(curve: ErcCurve, fraction: float) -> float:
    return float(curve.fnmr[int(np.argmin(np.abs(curve.fractions - fraction)))])


def table(results: dict[str, dict[str, ErcCurve]]) -> str:
    """Markdown rows: per pack and method, FNMR at 0 / 20% / 50% discarded, AUC and pAUC(0-0.2), each
    against random discard."""
    lines = ["| pack | method | FNMR at 0 / 20% / 50% discarded | AUC 0-0.95 | vs random | pAUC 0-0.2 | vs random |",
             "|---|---|---|---|---|---|---|"]
    for name, by_method in results.items():
        random_area, random_partial = by_method["random"].area, partial_area(by_method["random"])
        for method in METHODS:
            if method not in by_method:
                continue
            c = by_method[method]
            change = "—" if method == "random" else f"{100 * (c.area / random_area - 1):+.1f}%"
            pchange = "—" if method == "random" else f"{100 * (partial_area(c) / random_partial - 1):+.1f}%"
            area = f"{c.area:.4f}" + (f" ± {by_method['random_std']:.4f}" if method == "random" else "")
            fnmr = " / ".join(f"{_fnmr_at(c, r):.3f}" for r in (0.0, 0.2, 0.5))
            lines.append(f"| {name} | {method} | {fnmr} | {area} | {change} | {partial_area(c):.4f} | {pchange} |")
    return "\n".join(lines)


def from_json(report: dict[str, Any]) -> dict[str, dict[str, ErcCurve]]:
    """The curves of a written ``.json`` report (to redraw its figure and table with ``--replot``)."""
    data = dict(report["results"])
    fractions = np.asarray(data.pop("fractions"))
    results: dict[str, dict[str, Any]] = {}
    for name, by_method in data.items():
        results[name] = {"random_std": by_method["random_area_std"]}
        for method in METHODS:
            if method in by_method:
                m = by_method[method]
                discarded = np.floor(fractions * m["genuine"] * (1 + 1e-12)).astype(np.int64)
                results[name][method] = ErcCurve(fractions, np.asarray(m["fnmr"]), discarded, m["threshold"],
                                                 report["fmr"], m["achieved_fmr"], m["area"], m["genuine"],
                                                 m["impostor"])
    return results


def as_json(results: dict[str, dict[str, ErcCurve]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, by_method in results.items():
        out[name] = {"random_area_std": by_method["random_std"]}
        for method in METHODS:
            if method in by_method:
                c = by_method[method]
                out[name][method] = {"area": c.area, "partial_area": partial_area(c), "fnmr": c.fnmr.tolist(),
                                     "threshold": c.threshold,
                                     "achieved_fmr": c.achieved_fmr, "genuine": c.num_genuine,
                                     "impostor": c.num_impostor}
    out["fractions"] = FRACTIONS.tolist()
    return out


# ------------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, help="synthetic data set seed (required unless --replot)")
    p.add_argument("--split", help="label of the run: validation / test (required unless --replot)")
    p.add_argument("--size", choices=sorted(DEMO_SIZES), default="small", help="demo size of the data set")
    p.add_argument("--work", type=Path, default=Path("bench_quality_work"), help="work folder (reused)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder of the PNG and JSON")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of configs/sdd_fiqa_synth.yaml (e.g. train.max_steps=200)")
    p.add_argument("--tag", default="default", help="names the regressor's run folder (one per config)")
    p.add_argument("--fmr", type=float, default=1e-2)
    p.add_argument("--draws", type=int, default=20, help="random-discard draws averaged")
    p.add_argument("--bin", type=Path, action="append", default=[], help="another .bin pack (no ground truth)")
    p.add_argument("--pack-pairs", type=int, metavar="N",
                   help="score larger packs instead of the data set's own: N pairs each, rendered from synth seed "
                        "PACK_OFFSET + --seed (other people than the training set's), cached in --work")
    p.add_argument("--pack-identities", type=int, default=300, help="held-out people of the --pack-pairs packs")
    p.add_argument("--crossfit", type=int, metavar="FOLDS", default=0,
                   help="train the regressor on out-of-fold pseudo-labels (FOLDS backbones, each trained "
                        "without one fold of the identities; see crossfit_labels); 0: the seed's own mining run")
    p.add_argument("--mislabel-rate", type=float, metavar="R",
                   help="the synthetic training set's share of mislabelled images (default: the demo's 0.05)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--replot", type=Path, metavar="JSON",
                   help="only redraw the figure and table of a written report (next to it)")
    return p


#: ``--pack-pairs`` packs come from synth seed ``PACK_OFFSET + --seed``: people disjoint from the data set's.
PACK_OFFSET = 50_000


def larger_packs(args: argparse.Namespace, cfg: Any) -> tuple[Path, int, int]:
    """Render (once) the ``--pack-pairs`` packs; return their folder, synth seed and pairs per pack."""
    seed = PACK_OFFSET + args.seed
    scfg = SynthConfig(identities=cfg.synth.identities, images_per_identity=1, seed=seed,
                       holdout_identities=args.pack_identities, pairs=args.pack_pairs)
    where = args.work / f"packs_seed{seed}_{args.pack_pairs}x{args.pack_identities}"
    if not (where / "packs.json").is_file():
        started = time.perf_counter()
        generate_packs(scfg, where, args.threads)
        print(f"packs of {args.pack_pairs} pairs (synth seed {seed}): {time.perf_counter() - started:.0f} s", flush=True)
    return where, seed, args.pack_pairs


def score_all(args: argparse.Namespace, cfg: Any, layout: Layout,
              regressor: nn.Module) -> dict[str, dict[str, ErcCurve]]:
    """The curves of the three synthetic packs (with their ground truth; the data set's own, or the
    ``--pack-pairs`` packs) and of every ``--bin`` pack."""
    backbone, _ = load_backbone(train_config(cfg, layout), trained_weights(layout))
    folder, seed, pairs = (larger_packs(args, cfg) if args.pack_pairs
                           else (layout.synth, cfg.synth.seed, cfg.synth.pairs))
    results = {}
    for spec in PACKS:
        pack = score_pack(folder / f"{spec.name}.bin", backbone, regressor)
        pack.quality["ground_truth"] = ground_truth_quality(seed, pack.name, pairs)
        results[pack.name] = curves(pack, args.fmr, args.draws, args.seed)
    for path in args.bin:
        pack = score_pack(path, backbone, regressor)
        results[f"{path.parent.name}/{path.stem}"] = curves(pack, args.fmr, args.draws, args.seed)
    return results


def title(report: dict[str, Any]) -> str:
    checkpoint = Path(report["regressor"]["checkpoint"])
    return (f"{report['split']} (seed {report['seed']}, {report.get('size', 'full')}): error versus discard, "
            f"regressor {checkpoint.parent.parent.name}/{checkpoint.name}")


def replot(path: Path) -> int:
    """Redraw the PNG and print the table of the report ``path``."""
    report = json.loads(path.read_text())
    results = from_json(report)
    figure(results, title(report), path.with_suffix(".png"))
    print(table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.replot:
        return replot(args.replot)
    if args.seed is None or args.split is None:
        build_parser().error("--seed and --split are required (unless --replot)")
    torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    print(f"machine: {describe()}; python {platform.python_version()}, torch {torch.__version__}", flush=True)
    cfg, layout = prepare(args.size, args.seed, args.work, args.mislabel_rate)
    run = crossfit_labels(cfg, layout, args.crossfit) if args.crossfit else None
    tcfg = regressor_config(cfg, layout, parse_overrides(args.overrides), args.tag, run)
    regressor, spec = load_quality_model(train_regressor(tcfg))
    results = score_all(args, cfg, layout, regressor)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"erc_{args.split}_seed{args.seed}"
    report = {"split": args.split, "size": args.size, "seed": args.seed, "fmr": args.fmr, "regressor": spec,
              "crossfit": args.crossfit, "mislabel_rate": cfg.synth.mislabel_rate,
              "pack_pairs": args.pack_pairs, "pack_seed": PACK_OFFSET + args.seed if args.pack_pairs else None,
              "overrides": args.overrides, "results": as_json(results)}
    figure(results, title(report), stem.with_suffix(".png"))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(table(results))
    print(f"wall {time.perf_counter() - wall:.0f} s, CPU {usage.ru_utime + usage.ru_stime:.0f} s, "
          f"load {os.getloadavg()[0]:.1f}; wrote {stem}.png and .json", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
