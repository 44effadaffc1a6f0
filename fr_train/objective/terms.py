"""Auxiliary terms: a weighted loss plus the :class:`Need` s it declares, and the registry that builds them.

A :class:`Term` is ``weight * loss.batch_loss(batch)``; ``needs`` says what the batch must carry for it
beyond the classification embeddings (composer branches, teacher embeddings, a low-resolution copy). The
trainer provides exactly the union of the declared needs, and each term sees only its own.

:data:`TERMS` maps every ``objective.terms.<name>`` to its :class:`TermSpec`: the config class, the needs
of a config, and how to build and check the loss. DDL, OT, EKD and FAN's two terms come from the
:data:`fr_train.objective.losses.LOSSES` registry (their config keys are the loss's constructor arguments);
``kd_lowres`` loads the teacher's classifier (:mod:`fr_train.objective.kd`); ``quality`` (the SDD-FIQA
regression head, :class:`fr_train.objective.quality.QualityRegression`) is built for the embedding width and
needs per-sample targets. A new term is a loss with
``batch_loss(batch)``, a config dataclass (:mod:`fr_train.objective.config`) and a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.objective.batch import Need
from fr_train.objective.config import (DDLConfig, EKDConfig, FanPairedConfig, FanUnpairedConfig, LowResKDConfig,
                                       OTConfig, QualityConfig, TermConfig, TermsConfig)
from fr_train.objective.kd import LowResDistillation, load_classifier
from fr_train.objective.losses import LOSSES
from fr_train.objective.quality import QualityRegression

__all__ = ["Term", "TermContext", "TermSpec", "TERMS", "build_terms", "check_terms", "active_terms"]


@dataclass(frozen=True)
class Term:
    """One weighted auxiliary term.

    Attributes:
        name: its name in the logs (``ddl``, ``ddl/pos_kl``, ...) and in the objective's state.
        loss: any module with ``batch_loss(batch) -> LossOutput | Tensor``.
        weight: its weight in the total loss.
        needs: the inputs it reads besides ``embeddings`` and ``labels``.
    """

    name: str
    loss: nn.Module
    weight: float = 1.0
    needs: frozenset[Need] = frozenset()


@dataclass(frozen=True)
class TermContext:
    """What building a loss may depend on besides its config."""

    embedding_size: int
    num_classes: int


@dataclass(frozen=True)
class TermSpec:
    """How ``objective.terms.<name>`` becomes a :class:`Term`.

    Attributes:
        config: the dataclass of its settings.
        needs: the needs of a config.
        loss: builds the loss of a config.
        check: raises ConfigError for settings the loss rejects (at config load, without data).
    """

    config: type[TermConfig]
    needs: Callable[[Any], frozenset[Need]]
    loss: Callable[[Any, TermContext], nn.Module]
    check: Callable[[Any], None]


def _needs(*needs: Need) -> Callable[[Any], frozenset[Need]]:
    return lambda cfg: frozenset(needs)


def _ot_needs(cfg: OTConfig) -> frozenset[Need]:
    return frozenset({Need.BRANCHES if cfg.reference == "branches" else Need.TEACHER})


#: Config keys of a term that are not arguments of its loss.
TERM_ONLY_KEYS = frozenset({"weight", "reference"})


def _registered_loss(name: str) -> Callable[[Any, TermContext], nn.Module]:
    """A builder calling ``LOSSES[name]`` with the config's loss arguments."""
    def build(cfg: Any, context: TermContext) -> nn.Module:
        kwargs = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in TERM_ONLY_KEYS}
        return LOSSES[name](**kwargs)
    return build


def _constructs(name: str) -> Callable[[Any], None]:
    """A check that ``LOSSES[name]`` accepts the config's arguments."""
    def check(cfg: Any) -> None:
        try:
            _registered_loss(name)(cfg, TermContext(1, 2))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"objective.terms.{name}: {exc}") from exc
    return check


def _lowres_loss(cfg: LowResKDConfig, context: TermContext) -> nn.Module:
    weight = load_classifier(cfg.classifier, cfg.classifier_key, context.num_classes, context.embedding_size)
    return LowResDistillation(weight, cfg.s, cfg.m)


def _lowres_check(cfg: LowResKDConfig) -> None:
    if cfg.classifier is None:
        raise ConfigError("objective.terms.kd_lowres.classifier: the teacher's classifier checkpoint is "
                          "required (e.g. objective.pt of the teacher's run)")


def _quality_loss(cfg: QualityConfig, context: TermContext) -> nn.Module:
    return QualityRegression(context.embedding_size, cfg.scale, cfg.delta)


def _quality_check(cfg: QualityConfig) -> None:
    try:
        _quality_loss(cfg, TermContext(1, 2))
    except ValueError as exc:
        raise ConfigError(f"objective.terms.quality: {exc}") from exc


#: ``objective.terms`` name -> how to build it (the field names of :class:`TermsConfig`, in loss order).
TERMS: dict[str, TermSpec] = {
    "ddl": TermSpec(DDLConfig, _needs(Need.BRANCHES), _registered_loss("ddl"), _constructs("ddl")),
    "ot": TermSpec(OTConfig, _ot_needs, _registered_loss("ot"), _constructs("ot")),
    "ekd": TermSpec(EKDConfig, _needs(Need.TEACHER), _registered_loss("ekd"), _constructs("ekd")),
    "kd_lowres": TermSpec(LowResKDConfig, _needs(Need.LOWRES), _lowres_loss, _lowres_check),
    "quality": TermSpec(QualityConfig, _needs(Need.TARGETS), _quality_loss, _quality_check),
    "fan_paired": TermSpec(FanPairedConfig, _needs(Need.LOWRES), _registered_loss("fan_paired"),
                           _constructs("fan_paired")),
    "fan_unpaired": TermSpec(FanUnpairedConfig, _needs(Need.BRANCHES), _registered_loss("fan_unpaired"),
                             _constructs("fan_unpaired")),
}


def active_terms(cfg: TermsConfig) -> dict[str, Any]:
    """The terms that are on: name -> settings, in :data:`TERMS` order."""
    return {name: getattr(cfg, name) for name in TERMS if getattr(cfg, name) is not None}


def check_terms(cfg: TermsConfig) -> dict[str, frozenset[Need]]:
    """Check every active term's settings; return each one's needs.

    Raises:
        ConfigError: naming the term.
    """
    needs = {}
    for name, settings in active_terms(cfg).items():
        TERMS[name].check(settings)
        needs[name] = TERMS[name].needs(settings)
    return needs


def build_terms(cfg: TermsConfig, context: TermContext) -> list[Term]:
    """The active terms, built (after :func:`check_terms`)."""
    check_terms(cfg)
    return [Term(name, TERMS[name].loss(settings, context), settings.weight, TERMS[name].needs(settings))
            for name, settings in active_terms(cfg).items()]
