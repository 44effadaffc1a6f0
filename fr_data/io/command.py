"""How a command ends on bad input or Ctrl-C: one line on stderr naming the command, never a traceback.

Every command's ``main(argv, prog)`` is wrapped by :func:`command`: a :class:`HardmineError` that escapes
it is printed as ``PROG: error: MESSAGE`` (exit 2) and Ctrl-C as ``PROG: interrupted`` (exit 130, the
shell's code for SIGINT). ``PROG`` is the command as the user typed it (``hardmine embed``), the same
name argparse puts in its usage errors.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from fr_data.io.errors import HardmineError, one_line

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "command", "fail"]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

Main = Callable[[list[str] | None, str | None], int]


def fail(prog: str, exc: BaseException) -> int:
    """Print ``exc`` as one line naming ``prog``; return the bad-input exit code."""
    print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
    return EXIT_BAD_INPUT


def command(default_prog: str) -> Callable[[Main], Main]:
    """Decorate a command's ``main(argv, prog)``: ``prog`` defaults to ``default_prog`` (so a
    ``tools/*.py`` wrapper names the same command), bad input and Ctrl-C end in one line."""
    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: list[str] | None = None, prog: str | None = None) -> int:
            prog = prog or default_prog
            try:
                return main(argv, prog)
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
            except HardmineError as exc:
                return fail(prog, exc)
        return run
    return decorate
