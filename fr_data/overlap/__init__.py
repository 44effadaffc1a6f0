"""Auditing evaluation sets against a training set (``hardmine overlap``): shared identities and leaked
images. ``sources`` reads an evaluation SPEC, ``embedding`` embeds it like the training set, ``threshold``
calibrates the identity threshold, ``audit`` searches, ``run`` writes the overlap folder."""
