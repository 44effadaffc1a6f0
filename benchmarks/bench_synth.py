"""Synthetic-face generator: throughput (images/s) and a learnability check.

Goal (issue 2): 20,000 training images in under a minute on 2 cores, and a data set from which a small
CNN learns identities while hard samples (large yaw, 1/8 resolution) stay hard.

    python benchmarks/bench_synth.py [--small] [--workers 2]      # throughput
    python benchmarks/bench_synth.py --learnability [--epochs 8]  # train a small CNN, accuracy per condition
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model as _cpu_model  # noqa: E402

from fr_data.synth import SynthConfig, generate  # noqa: E402




def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the rendering workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# ------------------------------------------------------------------------------------------------
# Learnability: a small CNN trained with softmax on clean labels; accuracy per capture condition.


def _small_cnn(num_classes: int):
    import torch.nn as nn

    def block(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    features = nn.Sequential(*block(3, 24), *block(24, 48), *block(48, 96), *block(96, 128),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 128), nn.BatchNorm1d(128))
    return features, nn.Linear(128, num_classes)


def _decode_all(jpegs: list[bytes]):
    import io

    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs])


def _to_tensor(pixels, flip: bool = False):
    import torch

    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
    return x.flip(-1) if flip else x


def _load_train(folder: Path):
    import numpy as np

    from fr_data.io.parquet import read_table
    from fr_data.formats.recordio import RecordIOReader, unpack_image_record
    from fr_data.synth import ATTRIBUTES_SCHEMA

    table = read_table(folder / "attributes.parquet", ATTRIBUTES_SCHEMA).to_pydict()
    with RecordIOReader(folder / "train.rec", folder / "train.idx") as reader:
        jpegs = [unpack_image_record(reader.read(k))[1] for k in table["source_index"]]
    return _decode_all(jpegs), {k: np.asarray(v) for k, v in table.items()}


def _train(features, head, pixels, labels, epochs: int) -> None:
    import numpy as np
    import torch

    params = list(features.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=5e-4)
    steps = epochs * (len(labels) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    rng = np.random.default_rng(0)
    y = torch.from_numpy(labels)
    for epoch in range(epochs):
        order, total = rng.permutation(len(labels)), 0.0
        for i in range(len(labels) // 64):
            idx = order[i * 64:(i + 1) * 64]
            x = _to_tensor(pixels[idx], flip=bool(rng.integers(2)))
            loss = torch.nn.functional.cross_entropy(head(features(x)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / (len(labels) // 64):.3f}", flush=True)


def _embed(features, pixels):
    import torch

    features.eval()
    with torch.no_grad():
        out = [features(_to_tensor(pixels[i:i + 256])) + features(_to_tensor(pixels[i:i + 256], flip=True))
               for i in range(0, len(pixels), 256)]
    return torch.nn.functional.normalize(torch.cat(out), dim=1).numpy()


def _pack_accuracy(features, path: Path) -> float:
    """Best-threshold verification accuracy (cosine) over the pack's pairs."""
    import numpy as np

    from fr_data.formats.verification import load_bin

    pack = load_bin(path)
    emb = _embed(features, _decode_all(pack.images))
    sims = np.sum(emb[0::2] * emb[1::2], axis=1)
    return max(np.mean((sims > t) == pack.issame) for t in np.unique(sims))


def run_learnability(epochs: int, workers: int) -> int:
    """Train a small CNN on clean labels; report held-out-image accuracy per condition and pack accuracy."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = SynthConfig(identities=100, images_per_identity=40, seed=0, mislabel_rate=0.0, duplicate_rate=0.0,
                      split_identity_rate=0.0, holdout_identities=100, pairs=400)
    with tempfile.TemporaryDirectory() as tmp:
        generate(cfg, tmp, workers=workers)
        pixels, attrs = _load_train(Path(tmp))
        test = np.random.default_rng(1).random(len(pixels)) < 0.15
        features, head = _small_cnn(int(attrs["label"].max()) + 1)
        start = time.perf_counter()
        _train(features, head, pixels[~test], attrs["label"][~test], epochs)
        print(f"trained {epochs} epochs on {int((~test).sum())} images in {time.perf_counter() - start:.0f} s")
        features.eval()
        with torch.no_grad():
            pred = np.concatenate([head(features(_to_tensor(pixels[test][i:i + 256]))).argmax(1).numpy()
                                   for i in range(0, int(test.sum()), 256)])
        correct = pred == attrs["label"][test]
        yaw, scale = np.abs(attrs["yaw"][test]), attrs["scale"][test]
        for name, sel in [("frontal |yaw|<20, full res", (yaw < 20) & (scale == 1)),
                          ("|yaw|>=60, full res", (yaw >= 60) & (scale == 1)),
                          ("|yaw|<20, 1/8 res", (yaw < 20) & (scale == 0.125)),
                          ("all held-out images", np.ones_like(correct))]:
            print(f"identification accuracy, {name}: {correct[sel].mean():.3f} (n={int(sel.sum())})")
        for pack in ("synth_easy", "synth_pose", "synth_lowres"):
            print(f"verification accuracy {pack} (held-out identities): "
                  f"{_pack_accuracy(features, Path(tmp) / f'{pack}.bin'):.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Time one generation run and print images/s."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="2,000 images instead of 20,000")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--images-per-identity", type=int, default=20)
    p.add_argument("--learnability", action="store_true", help="train a small CNN instead of timing")
    p.add_argument("--epochs", type=int, default=8)
    args = p.parse_args(argv)
    if args.learnability:
        return run_learnability(args.epochs, args.workers)
    total = 2_000 if args.small else 20_000
    cfg = SynthConfig(identities=total // args.images_per_identity, images_per_identity=args.images_per_identity,
                      seed=0, duplicate_rate=0.0, pairs=0)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu0 = time.perf_counter(), _cpu_seconds()
        info = generate(cfg, tmp, workers=args.workers)
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    n = info["counts"]["num_images"]
    print(f"machine: nproc={os.cpu_count()} cpu={_cpu_model()!r}")
    print(f"config: {cfg.identities} identities x {cfg.images_per_identity} images, workers={args.workers}")
    print(f"images: {n}  wall: {wall:.1f} s  throughput: {n / wall:.0f} images/s  "
          f"output: {size / 1e6:.1f} MB")
    print(f"cpu: {cpu:.1f} core-seconds = {cpu / n * 1000:.2f} ms per image (this process + workers)")
    print(f"goal 20,000 images < 60 s on 2 cores: measured-wall projection {20_000 / (n / wall):.1f} s; "
          f"2 dedicated cores projection {20_000 * cpu / n / 2:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
