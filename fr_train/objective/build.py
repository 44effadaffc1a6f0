"""An :class:`Objective` from the typed ``objective:`` config section, and the checks of that section.

``build_objective(cfg, embedding_size=512, num_classes=C)`` fills the classification slot (the head of
``cfg.head`` from :data:`fr_train.objective.heads.HEADS`, through Partial FC when ``cfg.partial_fc.enabled``)
and the terms of ``cfg.terms`` (:data:`fr_train.objective.terms.TERMS`). :func:`check_objective_config` runs
at config load: head and term settings, ranges (:func:`check_objective_settings`), and that every
declared need can be met.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fr_data.io.config import from_dict
from fr_data.io.errors import ConfigError
from fr_train.objective.batch import Need
from fr_train.objective.config import HeadConfig, ObjectiveConfig
from fr_train.objective.heads import build_head
from fr_train.objective.objective import Objective
from fr_train.objective.partial_fc import PartialFC
from fr_train.objective.terms import TermContext, build_terms, check_terms

__all__ = ["build_objective", "build_classification", "check_objective_config", "check_objective_settings",
           "objective_config"]


def objective_config(section: Mapping[str, Any]) -> ObjectiveConfig:
    """An :class:`ObjectiveConfig` from a mapping (as under ``objective:`` in YAML), its settings checked
    (:func:`check_objective_settings`; whether the needs are provided depends on the rest of the config).

    Raises:
        ConfigError: an unknown key, a wrong type, or settings a head or loss rejects.
    """
    cfg = from_dict(ObjectiveConfig, dict(section), where="objective")
    check_objective_settings(cfg)
    return cfg


def _head(cfg: HeadConfig, embedding_size: int, num_classes: int, with_weight: bool) -> nn.Module:
    try:
        return build_head(cfg.name, embedding_size, num_classes, with_weight=with_weight, **cfg.options())
    except TypeError as exc:
        raise ConfigError(f"objective.head: {cfg.name}: {exc}") from exc


def build_classification(cfg: ObjectiveConfig, *, embedding_size: int, num_classes: int,
                         device: torch.device | str = "cpu", seed: int = 0) -> nn.Module | None:
    """The classification slot: the margin head, Partial FC around it, or None (no head).

    Args:
        seed: seeds Partial FC's negative sampling (a generator on ``device``).
    """
    if cfg.head is None:
        return None
    if not cfg.partial_fc.enabled:
        return _head(cfg.head, embedding_size, num_classes, with_weight=True)
    head = _head(cfg.head, embedding_size, num_classes, with_weight=False)
    generator = torch.Generator(device=device).manual_seed(seed)
    return PartialFC(head, embedding_size, num_classes, cfg.partial_fc.sample_rate, generator)


def build_objective(cfg: ObjectiveConfig, *, embedding_size: int, num_classes: int,
                    device: torch.device | str = "cpu", seed: int = 0) -> Objective:
    """The objective of ``cfg`` (on the CPU; move it with ``.to``). Seed the global RNG before calling:
    the classifier weights are drawn from it.

    Args:
        embedding_size: feature dimension.
        num_classes: classes of the training data.
        device: the training device (where Partial FC's sampling generator lives).
        seed: seeds Partial FC's negative sampling.
    """
    classification = build_classification(cfg, embedding_size=embedding_size, num_classes=num_classes,
                                          device=device, seed=seed)
    terms = build_terms(cfg.terms, TermContext(embedding_size, num_classes))
    return Objective(classification, terms, head_weight=cfg.head_weight, gather=cfg.gather)


def _range_checks(cfg: ObjectiveConfig) -> list[tuple[bool, str]]:
    rate, scale = cfg.partial_fc.sample_rate, cfg.lowres_scale
    return [
        (0.0 < rate <= 1.0, f"objective.partial_fc.sample_rate must lie in (0, 1], got {rate}"),
        (not cfg.partial_fc.enabled or cfg.head is not None,
         "objective.partial_fc.enabled needs objective.head (the margin Partial FC applies)"),
        (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1,
         f"objective.lowres_scale must be [min, max] with 0 < min <= max <= 1, got {scale}"),
        (cfg.teacher is None or cfg.teacher.weights is not None,
         "objective.teacher.weights: a teacher checkpoint is required"),
        (bool(cfg.target_column), "objective.target_column must name a column of the run's samples.parquet"),
    ]


def _how_to_provide(cfg: ObjectiveConfig, composer: bool, run: bool) -> dict[Need, str | None]:
    """Per need: None when the config provides it, else what to set."""
    return {
        Need.BRANCHES: None if composer else "set data.composer.enabled: true",
        Need.LOWRES: None,
        Need.TEACHER: None if cfg.teacher is not None else "set objective.teacher (a frozen backbone)",
        Need.TARGETS: None if run else f"set data.run (the mining run whose samples.{cfg.target_column} "
                                       "holds the targets)",
    }


def check_objective_settings(cfg: ObjectiveConfig) -> dict[str, frozenset[Need]]:
    """Check ranges, the head (built once for two classes) and every term's settings; return the needs
    of each active term.

    Raises:
        ConfigError: naming the key.
    """
    for ok, message in _range_checks(cfg):
        if not ok:
            raise ConfigError(message)
    if cfg.head is not None:
        _head(cfg.head, 2, 2, with_weight=False)
    return check_terms(cfg.terms)


def check_objective_config(cfg: ObjectiveConfig, *, composer: bool, run: bool = False) -> None:
    """:func:`check_objective_settings`, then that every need a term declares is provided.

    Args:
        composer: whether the training data yields composer branches (``data.composer.enabled``).
        run: whether a mining run is given (``data.run``: per-sample targets).

    Raises:
        ConfigError: naming the key (for a missing input: what to set).
    """
    missing = _how_to_provide(cfg, composer, run)
    for name, needs in check_objective_settings(cfg).items():
        for need in sorted(needs, key=list(Need).index):
            if missing[need] is not None:
                raise ConfigError(f"objective.terms.{name} needs {need.value}: {missing[need]}")
