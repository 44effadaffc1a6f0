"""The ``hardmine`` command: one subcommand per pipeline stage (see :mod:`hardmine.cli.main`).

Each subcommand is a module here with ``build_parser(prog)`` and ``main(argv, prog) -> int`` (exit 0 ok,
2 bad input or config); ``tools/*.py`` are thin wrappers around the same functions.
"""
