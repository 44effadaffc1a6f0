"""Command-line entry points, one module per command, each exposing ``build_parser()`` and ``main(argv)``."""
