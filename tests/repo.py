"""The repository root, for tests that run its tools or read its configs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
