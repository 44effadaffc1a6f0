"""Training throughput: reading shards (selection + decode + augment through ``build_train_data``) vs
the same model on in-memory tensors, in one run; optionally on GPU, ArcFace vs CurricularFace + DDL + OT.

    python benchmarks/bench_train.py [--small] [--model mobilefacenet] [--images 1024] [--workers 1]
    python benchmarks/bench_train.py --device cuda --model iresnet50 --batch 128 --ddl-ot

Both CPU variants run the identical :meth:`fr_train.trainer.Trainer.train_step` (forward, loss, backward,
SGD step); only where the batches come from differs. Rounds alternate the two sources and the best round
of each is kept (the machine may be shared). Loader cost = 1 - shard img/s / in-memory img/s (goal <= 5%).
With ``--ddl-ot`` (meant for a GPU) the batches also carry composer branches (32 identities + 32 pairs per branch,
easy + hard) as in-memory tensors, and GPU utilisation is sampled with ``nvidia-smi`` while training.
"""

from __future__ import annotations

import argparse
import io
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fr_data.ingest.plan import ShardOptions  # noqa: E402
from fr_data.ingest.sharding import write_shards  # noqa: E402
from fr_data.ingest.source import SourceRecord, read_each  # noqa: E402
from fr_train.config import TrainConfig  # noqa: E402
from fr_train.objective import objective_config  # noqa: E402
from fr_train.data import Branch, DataConfig, ImageBatch, build_train_data  # noqa: E402
from fr_train.trainer import Trainer, build_module  # noqa: E402

ARCFACE = {"head": {"name": "arcface", "s": 64.0, "m": 0.5}}


class NoiseFaces:
    """An in-memory ``Source`` of ``count`` JPEG faces (smooth random colour fields, 112 x 112)."""

    def __init__(self, count: int, classes: int, path: Path):
        self.path, self.count, self.num_classes = path, count, classes

    def __len__(self) -> int:
        return self.count

    def indices(self) -> np.ndarray:
        return np.arange(self.count, dtype=np.int64)

    def read(self, index: int) -> SourceRecord:
        rng = np.random.default_rng(int(index))
        small = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(small).resize((112, 112), Image.BILINEAR).save(buf, format="JPEG", quality=90)
        return SourceRecord(int(index), int(index) % self.num_classes, buf.getvalue())

    def read_many(self, indices):
        return read_each(self, indices)

    def locate(self, index: int) -> tuple[Path, str]:
        return Path(self.path), f"index {index}"

    def describe(self) -> dict:
        return {"kind": "noise", "count": self.count}


def make_trainer(args, data, device: torch.device, objective: dict) -> Trainer:
    """A trainer of ``objective`` (an ``objective:`` section as a mapping); weights seeded by train.seed."""
    cfg = TrainConfig()
    cfg.model.name, cfg.model.embedding_size = args.model, 512
    cfg.objective = objective_config(objective)
    cfg.train.amp, cfg.train.output, cfg.train.progress = args.amp, tempfile.mkdtemp(), False
    module = build_module(cfg, data.num_classes, device)
    return Trainer(cfg, data, module, device)


def timed_steps(trainer: Trainer, batches, steps: int, warmup: int) -> float:
    """img/s over ``steps`` steps after ``warmup`` untimed ones (the iterator is consumed inside)."""
    it = iter(batches)
    for _ in range(warmup):
        trainer.train_step(next(it))
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    start, images = time.perf_counter(), 0
    for _ in range(steps):
        batch = next(it)
        trainer.train_step(batch)
        images += len(batch)
    sync()
    return images / (time.perf_counter() - start)


def epochs_of(data):
    """Endless batches of the shard stream, epoch after epoch."""
    epoch = 0
    while True:
        data.set_epoch(epoch)
        yield from data
        epoch += 1


def cycled(batches):
    while True:
        yield from batches


def loader_alone(data, batches: int) -> float:
    """img/s of the shard stream alone (read, decode, augment, collate; no training)."""
    it = epochs_of(data)
    next(it)  # worker start-up is not counted
    start, images = time.perf_counter(), 0
    for _ in range(batches):
        images += len(next(it))
    return images / (time.perf_counter() - start)


def loader_vs_memory(args, shards: Path) -> None:
    cfg = DataConfig(shards=str(shards), batch_size=args.batch, num_workers=args.workers, seed=0)
    data = build_train_data(cfg, rank=0, world_size=1)
    data.set_epoch(0)
    memory = [b for _, b in zip(range(8), data)]  # pre-decoded, pre-augmented batches
    trainer = make_trainer(args, data, torch.device("cpu"), ARCFACE)
    rates = {"shards": [], "memory": []}
    for _ in range(args.rounds):
        rates["shards"].append(timed_steps(trainer, epochs_of(data), args.steps, args.warmup))
        rates["memory"].append(timed_steps(trainer, cycled(memory), args.steps, args.warmup))
    alone = max(loader_alone(data, args.steps) for _ in range(args.rounds))
    print(f"loader alone ({args.workers} worker(s)): {alone:.1f} img/s")
    best = {k: max(v) for k, v in rates.items()}
    print(f"rounds (img/s): shards {[f'{r:.1f}' for r in rates['shards']]}, "
          f"memory {[f'{r:.1f}' for r in rates['memory']]}")
    print(f"best: shards {best['shards']:.1f} img/s, in-memory {best['memory']:.1f} img/s, "
          f"loader cost {100 * (1 - best['shards'] / best['memory']):.1f}% (goal <= 5%)")


def branch_batch(batch: ImageBatch, identities: int, pairs: int, device) -> ImageBatch:
    """``batch`` plus easy and hard composer branches of random images (GPU benchmark)."""
    def branch() -> Branch:
        images = lambda n: torch.randn(n, 3, 112, 112, device=device)  # noqa: E731
        return Branch(images(identities), torch.arange(identities, device=device), images(pairs),
                      images(pairs), torch.arange(pairs, device=device))
    return ImageBatch(batch.images, batch.labels, batch.keys, [branch(), branch()])


class GpuSampler:
    """Mean ``nvidia-smi`` GPU utilisation (%) while active; None where nvidia-smi is missing."""

    def __init__(self, period: float = 0.2):
        self.period, self.values, self._stop = period, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
        while not self._stop.wait(self.period):
            try:
                self.values.append(float(subprocess.check_output(query, text=True).strip()))
            except (OSError, subprocess.CalledProcessError, ValueError):
                return

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None


def objective_comparison(args, shards: Path) -> None:
    """ArcFace vs CurricularFace + DDL + OT on in-memory batches, then ArcFace reading shards."""
    device = torch.device(args.device)
    cfg = DataConfig(shards=str(shards), batch_size=args.batch, num_workers=args.workers, seed=0,
                     pin_memory=device.type == "cuda")
    data = build_train_data(cfg, rank=0, world_size=1)
    data.set_epoch(0)
    memory = [b.to(device) for _, b in zip(range(8), data)]
    settings = {"arcface": (ARCFACE, memory),
                "curricularface+ddl+ot": (
                    {"head": {"name": "curricularface", "s": 64.0, "m": 0.5},
                     "terms": {"ddl": {}, "ot": {"weight": 0.1}}},
                    [branch_batch(b, 32, 32, device) for b in memory])}
    for name, (objective, batches) in settings.items():
        trainer = make_trainer(args, data, device, objective)
        with GpuSampler() as sampler:
            rate = timed_steps(trainer, cycled(batches), args.steps, args.warmup)
        util = "n/a" if sampler.mean is None else f"{sampler.mean:.0f}%"
        extra = sum(len(br.neg_images) + 2 * len(br.pos_a) for br in batches[0].branches or ())
        print(f"{name}: {rate:.1f} img/s of classification images (+{extra} branch images per step; "
              f"{args.model}, batch {args.batch}, amp {args.amp}), GPU utilisation {util}")
    shard_rate = timed_steps(make_trainer(args, data, device, settings["arcface"][0]), epochs_of(data),
                             args.steps, args.warmup)
    print(f"arcface reading shards ({args.workers} workers): {shard_rate:.1f} img/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny model, 256 images, fewer steps")
    parser.add_argument("--model", default="mobilefacenet")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--ddl-ot", action="store_true",
                        help="ArcFace vs CurricularFace + DDL + OT (in-memory batches; meant for GPU)")
    args = parser.parse_args(argv)
    if args.small:
        args.model, args.images, args.steps = "tiny", 256, 8
    torch.set_num_threads(args.threads)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    print(f"machine: {cpu}, {torch.get_num_threads()} torch thread(s), {args.workers} loader worker(s); "
          f"model {args.model}, batch {args.batch}, {args.images} images")
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(tmp) / "shards"
        start = time.perf_counter()
        source = NoiseFaces(args.images, args.classes, Path(tmp) / "src")
        write_shards(source, shards, ShardOptions(per_shard=256))
        print(f"wrote {args.images} images to shards in {time.perf_counter() - start:.1f} s")
        if args.ddl_ot:
            objective_comparison(args, shards)
        else:
            loader_vs_memory(args, shards)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
