"""hardmine training side: backbones, margin heads, hard-sample losses and the training loop."""

__version__ = "0.1.0"
