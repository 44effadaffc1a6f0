"""Benchmark: FAN's normalisation (issue 24, part 1 (c)): does a small decoder from identity + non-identity
features render low-resolution faces closer to their high-resolution renders than bicubic upsampling?

    python benchmarks/bench_fan_normalise.py --weights EXP/pretrain/checkpoints/step-N/model.pt --out DIR \\
        [--figure docs/img/fan_normalise.png] [--steps 400]

The identity encoder is a trained recognition backbone (``--weights``, ``--model``; e.g. an experiment's
pretrained backbone or a ``fan`` arm's fine-tuned one), frozen. The normaliser
(:class:`fr_train.normalise.Normaliser`) is trained on paired renders of the training people of synth seed
``--train-seed`` (:func:`fr_data.synth.paired.training_pairs`: low-resolution captures under the
``synth_lowres`` prior with their clean renders) and scored on the probes of the ``synth_lowres`` pack of
held-out people (:func:`fr_data.synth.paired.lowres_pack_pairs`: by default the validation pack of
``configs/experiments/hard_samples.yaml`` at size small, seed 3003, byte-identical to the experiment's).
Every method is compared with the clean high-resolution render of the same face:

* ``input``: the stored probe (the capture upsampled bilinearly, as aligned);
* ``bicubic``: the capture grid recovered by area averaging, upsampled bicubically;
* ``fan``: the normaliser (identity feature of the probe + non-identity map);
* ``fan_no_id``: the same normaliser trained with a zero identity feature (ablation: what the identity
  feature adds).

Metrics: PSNR and SSIM (scikit-image, ``data_range`` 255, SSIM over the colour channels) per image, mean
over the probes and per capture factor, and the identity cosine ``cos(f(image), f(render))`` of the
backbone. Writes ``OUT/fan_normalise.json``, ``OUT/normaliser.pt`` and the figure (LR input, bicubic, FAN,
high-resolution render side by side).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from _machine import describe
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fr_data.io.atomic import atomic_write_text
from fr_data.synth import SynthConfig
from fr_data.synth.paired import PairedImages, lowres_pack_pairs, training_pairs
from fr_train.checkpoints.weights import load_weights
from fr_train.models import get_model
from fr_train.normalise import NormaliserConfig, bicubic_from_capture, to_uint8, to_unit, train_normaliser


def image_scores(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PSNR (dB) and SSIM of ``(N, H, W, 3)`` uint8 images against their targets."""
    psnr = np.array([peak_signal_noise_ratio(t, p, data_range=255) for p, t in zip(pred, target)])
    ssim = np.array([structural_similarity(t, p, channel_axis=2, data_range=255) for p, t in zip(pred, target)])
    return psnr, ssim


def embed(backbone: torch.nn.Module, images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Unit-normalised backbone features of ``(N, 3, 112, 112)`` images in [-1, 1]."""
    with torch.no_grad():
        return F.normalize(torch.cat([backbone(images[i:i + batch]).float()
                                      for i in range(0, len(images), batch)]), dim=1)


def summarise(outputs: dict[str, np.ndarray], pack: PairedImages, backbone: torch.nn.Module) -> dict[str, Any]:
    """PSNR, SSIM and identity cosine of every method, overall and per capture factor."""
    reference = embed(backbone, to_unit(pack.high))
    rows: dict[str, Any] = {}
    for name, images in outputs.items():
        psnr, ssim = image_scores(images, pack.high)
        cos = (embed(backbone, to_unit(images)) * reference).sum(1).numpy()
        row = {"psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "identity_cos": float(cos.mean())}
        for factor in sorted(set(pack.downsample.tolist())):
            sel = pack.downsample == factor
            row[f"x{factor}"] = {"psnr": float(psnr[sel].mean()), "ssim": float(ssim[sel].mean()),
                                 "identity_cos": float(cos[sel].mean()), "images": int(sel.sum())}
        rows[name] = row
    return rows


def figure(outputs: dict[str, np.ndarray], pack: PairedImages, path: Path, per_factor: int = 3) -> None:
    """Rows of probes (``per_factor`` of each capture factor); columns: input, bicubic, FAN, render."""
    rows = np.concatenate([np.flatnonzero(pack.downsample == f)[:per_factor]
                           for f in sorted(set(pack.downsample.tolist()))])
    columns = [("low-resolution input", outputs["input"]), ("bicubic", outputs["bicubic"]),
               ("FAN normalised", outputs["fan"]), ("high-resolution render", pack.high)]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.0 * len(columns), 2.0 * len(rows)))
    for r, row in enumerate(rows):
        for c, (title, images) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(images[row])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"1/{pack.downsample[row]}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, required=True, help="model.pt of the recognition backbone")
    p.add_argument("--model", default="tiny", help="backbone name (fr_train.models)")
    p.add_argument("--embedding-size", type=int, default=64)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--figure", type=Path, default=None, help="figure path (default OUT/fan_normalise.png)")
    p.add_argument("--train-seed", type=int, default=3, help="synth seed of the training people")
    p.add_argument("--train-identities", type=int, default=100)
    p.add_argument("--per-identity", type=int, default=10)
    p.add_argument("--pack-seed", type=int, default=3003, help="synth seed of the scored synth_lowres pack")
    p.add_argument("--identities", type=int, default=100, help="training identities of the pack's synth config")
    p.add_argument("--pack-identities", type=int, default=100)
    p.add_argument("--pack-pairs", type=int, default=600)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    backbone = load_weights(get_model(args.model, embedding_size=args.embedding_size), args.weights).eval()
    train = training_pairs(args.train_seed, args.train_identities, args.per_identity)
    pack = lowres_pack_pairs(SynthConfig(identities=args.identities, images_per_identity=1, seed=args.pack_seed,
                                         holdout_identities=args.pack_identities, pairs=args.pack_pairs))
    rendered = time.perf_counter()
    print(f"rendered {len(train)} training pairs and {len(pack)} probes in {rendered - start:.0f} s", flush=True)
    low, high, factors = to_unit(train.low), to_unit(train.high), torch.from_numpy(train.downsample)
    probe, probe_factors = to_unit(pack.low), torch.from_numpy(pack.downsample)
    upsampled = bicubic_from_capture(probe, probe_factors)
    outputs = {"input": pack.low, "bicubic": to_uint8(upsampled)}
    losses, models = {}, {}
    for name, use_identity in (("fan", True), ("fan_no_id", False)):
        cfg = NormaliserConfig(steps=args.steps, use_identity=use_identity, seed=args.seed)
        model, losses[name] = train_normaliser(low, high, factors, lambda x: embed(backbone, x),
                                               args.embedding_size, cfg)
        with torch.no_grad():
            outputs[name] = to_uint8(model(upsampled, embed(backbone, probe)))
        models[name] = model
        print(f"trained {name}: L1 {losses[name][0]:.4f} -> {losses[name][-1]:.4f}", flush=True)
    trained = time.perf_counter()
    results = summarise(outputs, pack, backbone)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(models["fan"].state_dict(), args.out / "normaliser.pt")
    figure(outputs, pack, args.figure or args.out / "fan_normalise.png")
    record = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": describe(),
              "train_pairs": len(train), "probes": len(pack), "results": results,
              "loss_first_last": {k: [v[0], v[-1]] for k, v in losses.items()},
              "seconds": {"render": rendered - start, "train": trained - rendered}}
    atomic_write_text(args.out / "fan_normalise.json", json.dumps(record, indent=2) + "\n")
    print("| method | PSNR (dB) | SSIM | identity cos | PSNR 1/4 | PSNR 1/8 |")
    print("|---|---|---|---|---|---|")
    for name, row in results.items():
        print(f"| {name} | {row['psnr']:.2f} | {row['ssim']:.3f} | {row['identity_cos']:.3f} | "
              f"{row.get('x4', {}).get('psnr', float('nan')):.2f} | {row.get('x8', {}).get('psnr', float('nan')):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
