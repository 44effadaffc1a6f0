"""The command-line options of the benchmarks that run the demo recipe (size, work folder, seed)."""

from __future__ import annotations

import argparse
from pathlib import Path


def demo_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with ``--small``, ``--work`` and ``--seed`` as every demo-recipe benchmark reads them."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="the demo's small size (about a minute)")
    p.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed afterwards)")
    p.add_argument("--seed", type=int, help="data set / training seed (default 0, the README demo's)")
    return p
