"""``python -m hardmine SUBCOMMAND`` (the same as the ``hardmine`` command; works under torchrun)."""

from hardmine.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
