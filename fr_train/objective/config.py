"""The ``objective:`` section of a training config: the classification slot, the auxiliary terms and the
inputs the terms need. Built from YAML by :func:`fr_data.io.config.from_dict` (unknown key = error)::

    objective:
      head: {name: curricularface, s: 64.0, m: 0.5}  # a HEADS margin head; null: no classification term
      head_weight: 1.0
      partial_fc: {enabled: true, sample_rate: 0.1}  # the head's margin on sharded, sampled class centres
      terms:                                         # a term is on when its entry is a mapping
        ddl: {weight: 1.0}                           # needs composer branches (data.composer)
        ot: {weight: 0.1, reference: branches}       # needs branches (or teacher embeddings: teacher)
        ekd: {weight: 1.0, top_k: 2000}              # needs teacher embeddings (objective.teacher)
        kd_lowres: {weight: 1.0, classifier: teacher_run/objective.pt}  # needs a low-resolution copy
        quality: {weight: 1.0, scale: 100.0, delta: 1.0}  # SDD-FIQA regression; needs per-sample targets
        fan_paired: {weight: 1.0}                    # FAN consistency; needs a low-resolution copy
        fan_unpaired: {weight: 1.0, branch: 1, sigma: 0.5}  # FAN alignment; needs composer branches
      teacher: {name: iresnet50, weights: pretrained/r50/model.pt}     # gives teacher embeddings
      lowres_scale: [0.125, 0.5]                     # gives the low-resolution copy
      lowres_dist: uniform                           # its factor's draw (uniform | log_uniform)
      target_column: quality_sdd                     # gives per-sample targets (data.run's samples column)
      gather: true                                   # the terms see the batch of all ranks

``null`` turns off a term that a ``base:`` file turned on (``terms: {ot: null}``); ``ddl: {}`` turns DDL
on with its defaults. A term's settings default to its loss's own defaults.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Literal

from fr_train.data.config import ScaleDist
from fr_train.models.config import ModelConfig
from fr_train.objective.kd import LowResDistillation
from fr_train.objective.losses import DistributionDistillationLoss, EKDLoss, OTLoss, UnpairedAlignment
from fr_train.objective.quality import QualityRegression

__all__ = ["HeadConfig", "PartialFCConfig", "TermConfig", "DDLConfig", "OTConfig", "EKDConfig",
           "LowResKDConfig", "QualityConfig", "FanPairedConfig", "FanUnpairedConfig", "TermsConfig",
           "ObjectiveConfig"]


def _default(loss: type, name: str) -> Any:
    """The default of ``loss``'s constructor argument ``name`` (one source for config and code defaults)."""
    return inspect.signature(loss).parameters[name].default


@dataclass
class HeadConfig:
    """The margin head of the classification slot (:data:`fr_train.objective.heads.HEADS`).

    Attributes:
        name: ``arcface``, ``cosface``, ``curricularface`` or ``cifp``.
        s: logit scale.
        m: margin; None: the head's default (ArcFace 0.5, CosFace 0.4, CurricularFace 0.5, CIFP 0.35).
        momentum: CurricularFace's EMA weight of ``t``; None: its default.
        target_fpr: CIFP's false-positive rate of the unified threshold; None: 1 / (C - 1).
    """

    name: str = "arcface"
    s: float = 64.0
    m: float | None = None
    momentum: float | None = None
    target_fpr: float | None = None

    def options(self) -> dict[str, float]:
        """Keyword arguments of the head: ``s`` and every optional setting that is set."""
        optional = {"m": self.m, "momentum": self.momentum, "target_fpr": self.target_fpr}
        return {"s": self.s, **{k: v for k, v in optional.items() if v is not None}}


@dataclass
class PartialFCConfig:
    """Partial FC (https://arxiv.org/abs/2010.05222): class centres sharded over ranks, sampled negatives.

    Attributes:
        enabled: the classification slot is a :class:`fr_train.objective.partial_fc.PartialFC` around the
            head.
        sample_rate: fraction of each rank's centres used per step (1.0 = model parallel, no sampling).
    """

    enabled: bool = False
    sample_rate: float = 1.0


@dataclass
class TermConfig:
    """Settings every auxiliary term has.

    Attributes:
        weight: the term's weight in the total loss.
    """

    weight: float = 1.0


@dataclass
class DDLConfig(TermConfig):
    """DDL (:class:`fr_train.objective.losses.DistributionDistillationLoss`); needs composer branches."""

    num_bins: int = _default(DistributionDistillationLoss, "num_bins")
    sigma: float = _default(DistributionDistillationLoss, "sigma")
    pos_kl_weight: float = _default(DistributionDistillationLoss, "pos_kl_weight")
    neg_kl_weight: float = _default(DistributionDistillationLoss, "neg_kl_weight")
    order_weight: float = _default(DistributionDistillationLoss, "order_weight")
    detach_teacher: bool = _default(DistributionDistillationLoss, "detach_teacher")


@dataclass
class OTConfig(TermConfig):
    """OT after OTFace (:class:`fr_train.objective.losses.OTLoss`).

    Attributes:
        reference: what hard anchors are transported onto: ``branches`` (the composer's easy branch;
            needs composer branches) or ``teacher`` (the teacher's embeddings of the same images; needs
            ``objective.teacher`` with the student's output space).
    """

    margin: float = _default(OTLoss, "margin")
    eps: float = _default(OTLoss, "eps")
    num_iters: int = _default(OTLoss, "num_iters")
    detach_reference: bool = _default(OTLoss, "detach_reference")
    reference: Literal["branches", "teacher"] = "branches"


@dataclass
class EKDConfig(TermConfig):
    """EKD (:class:`fr_train.objective.losses.EKDLoss`); needs teacher embeddings (``objective.teacher``)."""

    fprs: list[float] = field(default_factory=lambda: list(_default(EKDLoss, "fprs")))
    momentum: float = _default(EKDLoss, "momentum")
    temperature: float = _default(EKDLoss, "temperature")
    top_k: int = _default(EKDLoss, "top_k")
    pos_weight: float = _default(EKDLoss, "pos_weight")
    neg_weight: float = _default(EKDLoss, "neg_weight")


@dataclass
class LowResKDConfig(TermConfig):
    """Low-resolution distillation (:class:`fr_train.objective.kd.LowResDistillation`); needs a low-resolution
    copy.

    Attributes:
        classifier: checkpoint holding the high-resolution teacher's classifier, trained on the same
            classes (e.g. ``objective.pt`` of the teacher's run); required.
        classifier_key: key of the ``(C, D)`` classifier weight in that checkpoint.
        s: logit scale.
        m: additive angular margin.
    """

    classifier: str | None = None
    classifier_key: str = "head.weight"
    s: float = _default(LowResDistillation, "s")
    m: float = _default(LowResDistillation, "m")


@dataclass
class QualityConfig(TermConfig):
    """SDD-FIQA quality regression (:class:`fr_train.objective.quality.QualityRegression`): a scalar head on
    the embedding fitted to per-sample targets (the mining run's ``objective.target_column``); needs
    ``data.run``. With ``head: null`` it is the whole objective (a quality regressor); beside a head, a
    multi-task model.

    Attributes:
        scale: label units per head unit (SDD-FIQA labels span 0-100).
        delta: Huber threshold in label units (the paper's Huber loss; TFace's SmoothL1 is delta 1).
    """

    scale: float = _default(QualityRegression, "scale")
    delta: float = _default(QualityRegression, "delta")


@dataclass
class FanPairedConfig(TermConfig):
    """FAN's paired consistency (:class:`fr_train.objective.losses.PairedConsistency`): the identity feature
    of each image's low-resolution copy (``objective.lowres_scale``, ``lowres_dist``) pulled to the
    original's; needs a low-resolution copy (its images count in the step's compute)."""


@dataclass
class FanUnpairedConfig(TermConfig):
    """FAN's unpaired alignment (:class:`fr_train.objective.losses.UnpairedAlignment`); needs composer
    branches.

    Attributes:
        branch: the composer branch of unpaired low-resolution images (1 = ``data.composer.hard[0]``,
            e.g. ``where: "resolution_bin = 'low'"``); aligned to the easy branch.
        sigma: Gaussian kernel width of the MMD on unit-normalised features.
    """

    branch: int = _default(UnpairedAlignment, "branch")
    sigma: float = _default(UnpairedAlignment, "sigma")


@dataclass
class TermsConfig:
    """The auxiliary terms, each off (None) or on with its settings; the names of :data:`TERMS`.

    They are added to the loss in this order: ``ddl``, ``ot``, ``ekd``, ``kd_lowres``, ``quality``,
    ``fan_paired``, ``fan_unpaired``.
    """

    ddl: DDLConfig | None = None
    ot: OTConfig | None = None
    ekd: EKDConfig | None = None
    kd_lowres: LowResKDConfig | None = None
    quality: QualityConfig | None = None
    fan_paired: FanPairedConfig | None = None
    fan_unpaired: FanUnpairedConfig | None = None


@dataclass
class ObjectiveConfig:
    """The training objective: ``head_weight * classification + sum_k weight_k * term_k``.

    Attributes:
        head: the margin head; None: no classification term (auxiliary terms only).
        head_weight: weight of the classification cross-entropy.
        partial_fc: run the head through Partial FC (needs a head).
        terms: the auxiliary terms.
        teacher: the frozen teacher backbone (``weights`` = its checkpoint) that embeds every batch for
            the terms that need teacher embeddings; unused otherwise.
        lowres_scale: ``[min, max]`` downsampling factor of the low-resolution copy of each image, for
            the terms that need it.
        lowres_dist: how that factor is drawn from the range (``uniform`` or ``log_uniform``, see
            :func:`fr_train.data.augment.draw_scale`).
        gather: the auxiliary terms see the batch all-gathered across ranks (classification stays
            local: Partial FC handles ranks itself).
        target_column: the column of the mining run's ``samples.parquet`` (``data.run``) whose values are
            the per-sample targets of the terms that need them (``quality``); read by sample key.
    """

    head: HeadConfig | None = field(default_factory=HeadConfig)
    head_weight: float = 1.0
    partial_fc: PartialFCConfig = field(default_factory=PartialFCConfig)
    terms: TermsConfig = field(default_factory=TermsConfig)
    teacher: ModelConfig | None = None
    lowres_scale: list[float] = field(default_factory=lambda: [0.125, 0.5])
    lowres_dist: ScaleDist = "uniform"
    gather: bool = False
    target_column: str = "quality_sdd"
