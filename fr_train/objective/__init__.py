"""The training objective: one classification slot plus auxiliary terms that declare what they need.

* :mod:`~fr_train.objective.config`: the typed ``objective:`` config section.
* :mod:`~fr_train.objective.batch`: the :class:`Batch` of features the terms read, and the :class:`Need` s
  (composer branches, a low-resolution copy, teacher embeddings) that fill its optional fields.
* :mod:`~fr_train.objective.terms`: :class:`Term` (a weighted loss and its needs) and the :data:`TERMS`
  registry behind ``objective.terms.<name>``.
* :mod:`~fr_train.objective.objective`: :class:`Objective`, ``head_weight * CE + sum_k weight_k * term_k``;
  the classification slot is a local margin head or Partial FC around one.
* :mod:`~fr_train.objective.build`: :func:`build_objective` from the config, and its checks.
* :mod:`~fr_train.objective.inputs`: what the trainer provides for the declared needs.

A config such as ``objective: {head: {name: curricularface, m: 0.5}, terms: {ddl: {weight: 1.0}, ot:
{weight: 0.1, eps: 0.05}}}`` becomes "CurricularFace + 1.0*DDL + 0.1*OT" without new code.
"""

from fr_train.objective.batch import NEED_FIELDS, Batch, Need
from fr_train.objective.build import (build_classification, build_objective, check_objective_config,
                                      check_objective_settings, objective_config)
from fr_train.objective.config import (DDLConfig, EKDConfig, HeadConfig, LowResKDConfig, ObjectiveConfig,
                                       OTConfig, PartialFCConfig, TermConfig, TermsConfig)
from fr_train.objective.inputs import PROVIDERS, Inputs, build_inputs
from fr_train.objective.objective import AuxiliaryLoss, Objective, ObjectiveOutput
from fr_train.objective.terms import TERMS, Term, TermContext, TermSpec

__all__ = [
    "AuxiliaryLoss", "Batch", "DDLConfig", "EKDConfig", "HeadConfig", "Inputs", "LowResKDConfig",
    "NEED_FIELDS", "Need", "OTConfig", "Objective", "ObjectiveConfig", "ObjectiveOutput", "PROVIDERS",
    "PartialFCConfig", "TERMS", "Term", "TermConfig", "TermContext", "TermSpec", "TermsConfig",
    "build_classification", "build_inputs", "build_objective", "check_objective_config",
    "check_objective_settings", "objective_config",
]
