"""Procedural synthetic face data sets with ground truth (identities, pose, resolution, label defects).

Entry point: :func:`generate` (CLI: ``hardmine synth``). Modules: ``identity`` (appearance priors of four
demographic-like groups), ``texture`` (per-identity face texture), ``render`` (numpy ray-casting renderer),
``variation`` (pose, lighting, resolution loss, noise, JPEG), ``defects`` (mislabels, near-duplicates, split
identities), ``packs`` (verification pairs) and ``dataset`` (orchestration and output files).
"""

from fr_data.synth.dataset import (ATTRIBUTES_SCHEMA, SynthConfig, TrainPlan, generate, generate_packs,
                                   plan_train)
from fr_data.synth.identity import GROUPS, Identity, sample_identity
from fr_data.synth.packs import PACKS

__all__ = ["ATTRIBUTES_SCHEMA", "SynthConfig", "TrainPlan", "generate", "generate_packs", "plan_train", "GROUPS", "Identity",
           "sample_identity", "PACKS"]
