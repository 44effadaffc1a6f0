"""``hardmine experiment`` (``tools/experiment.py``): the closed loop from mining to a measured hard-sample
gain, in one command.

    python tools/experiment.py --out EXP [--size small|full] [--seeds 0 1 2] [--arms ARM ...]
        [--config configs/experiments/hard_samples.yaml] [--workers N] [--device cpu|cuda]
        [--validation-only] [--overwrite] [--data-seed S]

Stages (each skipped on a rerun when its outputs exist and its inputs are unchanged; an interrupted
fine-tuning run resumes from its latest checkpoint): synthetic training set, validation and test packs of
held-out people, shards, pretraining, embedding, mining, fine-tuning of every arm x seed from the same
pretrained backbone at equal compute, scoring, report. Writes EXP/results.parquet (test packs),
EXP/validation.parquet, EXP/report.md and EXP/figures/*.png. ``--validation-only`` scores only the
validation packs (for tuning: the test packs stay unseen). An EXP folder made with another config is
refused, naming the differing keys, unless ``--overwrite`` (then stages whose inputs changed are redone).
Exit codes: 0 ok, 2 bad input or config.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import torch
import yaml

from fr_data import runtime
from fr_data.folders import experiment_folder as folder
from fr_data.io.argtypes import CommandParser, non_negative_int, output_folder, positive_int
from fr_data.io.atomic import atomic_write_text
from fr_data.io.command import command, fail
from fr_data.io.errors import ConfigError, HardmineError
from fr_data.io.publish import output_lock
from hardmine.experiment.arms import check_arms
from hardmine.experiment.config import (
    ExperimentConfig,
    differing_keys,
    experiment_dict,
    load_experiment,
    with_data_seed,
)
from hardmine.experiment.report import write_report
from hardmine.experiment.stages import Context, Layout, run_stages
from hardmine.experiment.verdict import verdict_of
from fr_data.io.shipped import resolve_config

__all__ = ["DEFAULT_CONFIG", "build_parser", "check_seeds", "claim_folder", "main"]

#: The packaged experiment config (``configs/experiments/hard_samples.yaml``).
DEFAULT_CONFIG = "experiments/hard_samples.yaml"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = CommandParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=output_folder, required=True, help="experiment folder (created; rerun to resume)")
    p.add_argument("--size", choices=["small", "full"], default="full",
                   help="small: a quick look (<= 10 min on 2 cores); full: the documented result")
    p.add_argument("--seeds", type=non_negative_int, nargs="*",
                   help="fine-tuning seeds (default: the size's seeds, 0 1 2 at full)")
    p.add_argument("--arms", nargs="+", help="arms to run (default: every arm of the config)")
    p.add_argument("--data-seed", type=positive_int, default=None, metavar="S",
                   help="another draw of the data and backbone: training set synth seed S, validation packs "
                        "1001*S, test packs 1001*(S+1) (the convention of the shipped configs; S >= 1); for "
                        "pooling backbones with tools/experiment_pool.py")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help="experiment YAML, a file or a packaged name (default experiments/hard_samples.yaml)")
    p.add_argument("--workers", type=positive_int, default=2,
                   help="processes for rendering, sharding, fine-tuning runs and scoring, one torch thread each "
                        "(default 2)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="training and scoring device")
    p.add_argument("--validation-only", action="store_true",
                   help="score the validation packs only (tuning runs: the test packs stay unseen)")
    p.add_argument("--overwrite", action="store_true",
                   help="accept an EXP folder made with another config (stages whose inputs changed are redone)")
    return p


def check_seeds(seeds: list[int]) -> list[int]:
    """Refuse an empty or repeated seed list."""
    if not seeds:
        raise ConfigError("--seeds: the seed list is empty")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: a seed is repeated in {seeds}")
    return list(seeds)


def claim_folder(out: Path, cfg: ExperimentConfig, overwrite: bool) -> None:
    """Write ``EXP/experiment.yaml``, or check that the folder was made by the same config.

    Raises:
        ConfigError: naming the file and the differing keys (without ``overwrite``).
    """
    path = out / folder.CONFIG
    current = experiment_dict(cfg)
    if path.is_file() and not overwrite:
        try:
            stored = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: unreadable ({exc}); use --overwrite or another --out") from None
        keys = differing_keys(stored, current)
        if keys:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            raise ConfigError(f"{path}: this folder was made by another config (differing keys: {shown}); "
                              "use --overwrite to redo what changed, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(current, sort_keys=False))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C: the worker processes are stopped, not orphaned


@command("hardmine experiment")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():
        return _main(argv, prog)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _main(argv, prog)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None, prog: str | None) -> int:
    args = build_parser(prog).parse_args(argv)
    command = f"{prog or 'python tools/experiment.py'} " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        cfg = load_experiment(resolve_config(args.config), args.size)
        if args.data_seed is not None:
            cfg = with_data_seed(cfg, args.data_seed)
        arms = list(args.arms) if args.arms else list(cfg.arms)
        check_arms(cfg, arms)
        seeds = check_seeds(cfg.seeds if args.seeds is None else args.seeds)
        runtime.resolve_device(args.device)  # cuda without a GPU: a config error before any work
        with output_lock(args.out, "experiment folder"):  # one run at a time (a rerun resumes)
            claim_folder(args.out, cfg, args.overwrite)
            splits = ("validation",) if args.validation_only else ("validation", "test")
            ctx = Context(cfg, Layout(args.out.resolve()), arms, seeds, device=args.device, workers=args.workers, splits=splits)
            started, threads = time.perf_counter(), torch.get_num_threads()
            torch.set_num_threads(1)  # one thread per process, ``--workers`` processes (hardmine.experiment.jobs)
            try:
                results = run_stages(ctx)
            finally:
                torch.set_num_threads(threads)
            times = {r.name: (r.seconds, r.info["stage_cpu_seconds"]) for r in results}
            report = write_report(ctx, times, command)
            verdict = verdict_of(args.out)
    except HardmineError as exc:
        return fail(prog, exc)
    print(verdict.text + f"\n\nwrote {report} ({time.perf_counter() - started:.0f} s)")
    return 0
