"""``hardmine train --config CONFIG [--set key=value] [--output DIR] [--resume [CKPT]]``: ``python -m fr_train``.

Under torchrun: ``torchrun --nproc_per_node 8 -m hardmine train --config ms1mv3_r50_arcface``. CONFIG is a
YAML path or the name of a packaged config (``fr_data.io.shipped.resolve_config``).
"""

from __future__ import annotations

import sys

from fr_data.io.command import command, fail
from fr_data.io.errors import ConfigError
from fr_train.__main__ import build_parser as _train_parser
from fr_train.__main__ import main as _train_main
from fr_data.io.shipped import resolve_config


def build_parser(prog: str | None = None):
    return _train_parser(prog)


@command("hardmine train")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Resolve ``--config`` against the packaged configs, then run the training entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = _with_resolved_config(argv)
    except ConfigError as exc:
        return fail(prog, exc)
    return _train_main(argv, prog=prog)


def _with_resolved_config(argv: list[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--config" and i + 1 < len(out):
            out[i + 1] = str(resolve_config(out[i + 1]))
        elif arg.startswith("--config="):
            out[i] = f"--config={resolve_config(arg.split('=', 1)[1])}"
    return out
