"""Prove what mining buys: fine-tune arms (baseline, clean, ddl, ddl_ot, lowres_aug, ...) from one
pretrained backbone at equal compute and score them on held-out hard packs.

    python tools/experiment.py --out EXP [--size small|full] [--seeds 0 1 2] [--arms ARM ...]
        [--config configs/experiments/hard_samples.yaml] [--workers N] [--device cpu|cuda]

See ``hardmine.cli.experiment`` for every option. Exit codes: 0 ok, 2 bad input or config.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.experiment import build_parser, main  # noqa: E402,F401

if __name__ == "__main__":
    raise SystemExit(main())
