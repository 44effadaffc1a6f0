"""Cost of the hard-sample losses on top of a margin-softmax step: ArcFace alone vs ArcFace + DDL + OT.

One run times forward+backward of two objectives built from configs through ``fr_train.objective``:
"arcface" and "arcface + 1.0*DDL + 0.1*OT", at batch 512, 512-d embeddings, 100,000 classes (the issue's
sizes), on fixed leaf embeddings (no backbone, so the ratio is the worst case: a backbone only adds to the
shared part). The two are timed interleaved and the median is reported, which keeps drift on a shared
machine out of the ratio. Goal: the extra losses cost <= 10% of the ArcFace step.

The 512 rows are laid out like the DDL reference batch: 128 easy + 128 hard single images (DDL negatives),
64 easy and 64 hard positive pairs (DDL positives); OT selects hard anchors among all 512 rows and
transports them towards the 256 easy rows of the same identity.

Usage: python benchmarks/bench_losses.py [--small] [--device cuda] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fr_train.objective import Batch, Objective, build_objective, objective_config  # noqa: E402

SINGLES, PAIRS = 128, 64


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=9, help="timed steps per objective (after 1 warm-up)")
    p.add_argument("--ot-margin", type=float, default=0.1)
    p.add_argument("--hard-noise", type=float, default=3.5, help="noise/centre ratio of the hard rows")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--small", action="store_true", help="10,000 classes, 3 repeats (smoke run)")
    args = p.parse_args(argv)
    if args.small:
        args.classes, args.repeats = 10_000, 3
    return args


def make_batch(
    dim: int, device: torch.device, hard_noise: float, seed: int = 0
) -> tuple[torch.Tensor, Callable[[], Batch]]:
    """Leaf embeddings (512, dim) and a function building the Batch views of them (fresh graph per call)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.cat([torch.arange(SINGLES), torch.arange(SINGLES), *(torch.arange(PAIRS) + SINGLES,) * 4])
    centers = torch.randn(SINGLES + PAIRS, dim, generator=g)
    hard_rows = torch.cat([torch.arange(SINGLES, 2 * SINGLES), torch.arange(2 * SINGLES + 2 * PAIRS, 512)])
    noise = torch.full((512, 1), 0.8)
    noise[hard_rows] = hard_noise
    emb = (centers[ids] + noise * torch.randn(512, dim, generator=g)).to(device).requires_grad_()
    labels = ids.to(device)
    easy_rows = torch.ones(512, dtype=torch.bool)
    easy_rows[hard_rows] = False
    easy_rows = easy_rows.to(device)

    def views() -> Batch:
        s, p = SINGLES, PAIRS
        easy, hard = emb[:s], emb[s : 2 * s]
        pairs = emb[2 * s :].split(p)  # easy a, easy b, hard a, hard b
        return Batch(
            embeddings=emb, labels=labels, neg_branches=[easy, hard], pos_a=[pairs[0], pairs[2]],
            pos_b=[pairs[1], pairs[3]], reference=emb[easy_rows], reference_labels=labels[easy_rows],
        )

    return emb, views


def build(args: argparse.Namespace, head: bool, losses: bool, device: torch.device) -> Objective:
    terms = {"ddl": {"weight": 1.0}, "ot": {"weight": 0.1, "margin": args.ot_margin}} if losses else {}
    config = objective_config({"head": {"name": "arcface"} if head else None, "terms": terms})
    return build_objective(config, embedding_size=args.dim, num_classes=args.classes).to(device)


def step(objective: Objective, emb: torch.Tensor, views: Callable[[], Batch], device: torch.device) -> float:
    """Seconds for one forward+backward (gradients cleared first)."""
    emb.grad = None
    objective.zero_grad(set_to_none=True)
    _sync(device)
    t0 = time.perf_counter()
    objective(views()).loss.backward()
    _sync(device)
    return time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    emb, views = make_batch(args.dim, device, args.hard_noise)
    objectives = {
        "arcface": build(args, True, False, device),
        "arcface+ddl+ot": build(args, True, True, device),
        "ddl+ot alone": build(args, False, True, device),
    }
    parts = objectives["ddl+ot alone"](views()).parts
    print(f"machine: {machine()}; device {device}")
    print(f"batch 512 x {args.dim}, {args.classes:,} classes; OT hard anchors {int(parts['ot/num_hard'])}"
          f" in {int(parts['ot/num_groups'])} identity groups (margin {args.ot_margin})")
    times: dict[str, list[float]] = {name: [] for name in objectives}
    for repeat in range(args.repeats + 1):  # interleaved; the first round is a warm-up
        for name, objective in objectives.items():
            elapsed = step(objective, emb, views, device)
            if repeat:
                times[name].append(elapsed)
    for name, values in times.items():
        print(f"{name:>16}: median {statistics.median(values) * 1e3:9.1f} ms, min {min(values) * 1e3:9.1f} ms"
              f" over {args.repeats} steps")
    base = {k: f(times["arcface"]) for k, f in (("median", statistics.median), ("min", min))}
    full = {k: f(times["arcface+ddl+ot"]) for k, f in (("median", statistics.median), ("min", min))}
    alone = statistics.median(times["ddl+ot alone"])
    print(f"extra losses, difference of steps: {full['median'] / base['median'] - 1:+.1%} (medians), "
          f"{full['min'] / base['min'] - 1:+.1%} (minima)")
    ratio = alone / base["median"]
    print(f"extra losses, timed alone: {alone * 1e3:.1f} ms = {ratio:.1%} of the ArcFace step "
          f"(goal <= 10%: {'met' if ratio <= 0.10 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
