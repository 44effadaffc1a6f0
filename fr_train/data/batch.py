"""What the training data yields: a classification batch plus optional DDL/OT branches of images."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch


def _moved(obj, device: torch.device | str, non_blocking: bool):
    """A copy of dataclass ``obj`` with every tensor field moved to ``device``."""
    updates = {f.name: getattr(obj, f.name).to(device, non_blocking=non_blocking)
               for f in fields(obj) if isinstance(getattr(obj, f.name), torch.Tensor)}
    return replace(obj, **updates)


def _pinned(obj):
    updates = {f.name: getattr(obj, f.name).pin_memory()
               for f in fields(obj) if isinstance(getattr(obj, f.name), torch.Tensor)}
    return replace(obj, **updates)


@dataclass
class Branch:
    """One DDL branch: single images of distinct identities (negatives) and positive pairs.

    Branch 0 is the easy (teacher) distribution, branches 1.. the hard (student) ones
    (Huang et al., Distribution Distillation Loss, https://arxiv.org/abs/2002.03662).

    Attributes:
        neg_images: (n, 3, S, S) one image per identity.
        neg_labels: (n,) int64 their (relabelled) identities, all distinct.
        pos_a: (p, 3, S, S) first images of the positive pairs.
        pos_b: (p, 3, S, S) second images, same identity as ``pos_a`` row for row.
        pos_labels: (p,) int64 identity of each pair.
        neg_keys: sample keys of ``neg_images``.
        pos_keys: ``(key_a, key_b)`` of each pair.
    """

    neg_images: torch.Tensor
    neg_labels: torch.Tensor
    pos_a: torch.Tensor
    pos_b: torch.Tensor
    pos_labels: torch.Tensor
    neg_keys: list[str] = field(default_factory=list)
    pos_keys: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_images(self) -> int:
        """Images this branch forwards: the negatives plus both sides of every positive pair."""
        return len(self.neg_images) + len(self.pos_a) + len(self.pos_b)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Branch:
        """This branch with its tensors on ``device``."""
        return _moved(self, device, non_blocking)

    def pin_memory(self) -> Branch:
        """This branch with pinned tensors (called by DataLoader with ``pin_memory=True``)."""
        return _pinned(self)


@dataclass
class ImageBatch:
    """A classification batch of one rank, with optional composer branches.

    Attributes:
        images: (B, 3, S, S) float32, RGB, normalised ``(x/255 - 0.5)/0.5``.
        labels: (B,) int64 relabelled classes in ``[0, num_classes)``.
        keys: the B sample keys.
        branches: DDL/OT branches (branch 0 easy, 1.. hard) or None when the composer is off.
    """

    images: torch.Tensor
    labels: torch.Tensor
    keys: list[str]
    branches: list[Branch] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def num_images(self) -> int:
        """Images this batch forwards: the classification images plus every composer branch's images
        (``len(batch)`` counts the classification images only)."""
        return len(self.images) + sum(b.num_images for b in self.branches or ())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ImageBatch:
        """This batch (and its branches) with tensors on ``device``."""
        moved = _moved(self, device, non_blocking)
        if self.branches is not None:
            moved.branches = [b.to(device, non_blocking) for b in self.branches]
        return moved

    def pin_memory(self) -> ImageBatch:
        """This batch with pinned tensors (called by DataLoader with ``pin_memory=True``)."""
        pinned = _pinned(self)
        if self.branches is not None:
            pinned.branches = [b.pin_memory() for b in self.branches]
        return pinned
