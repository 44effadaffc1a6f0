"""Hard-sample mining: from embeddings of every training image, find what is easy, hard, mislabelled
or duplicated, and cut variation splits, into Parquet manifests for DuckDB and for training.

Entry point: ``mine(embeddings, out, config, samples=..., attributes=..., knn=...)`` (what
``tools/mine_hard.py`` runs). Modules, one concept each: ``centres`` (class centres, leave-one-out
centre cosine, nearest classes, merge candidates), ``neighbours`` (sample k-NN, exact or candidate
search), ``noise`` (k-NN label vote, suspects), ``duplicates``, ``quality`` (SDD-FIQA, CR-FIQA, instance
FPR), ``difficulty``, ``pairs``, ``splits`` (bins, attribute joins), ``groups`` (k-means groups, bias
report), ``schemas``, ``config``, ``run``.
"""

from fr_data.mining.config import MiningConfig, validate_config
from fr_data.mining.run import MiningResult, mine
from fr_data.mining.schemas import (CLASSES_SCHEMA, GROUPS_SCHEMA, MINED_SAMPLES_SCHEMA, PAIRS_SCHEMA,
                                    SWEEP_SCHEMA)

__all__ = ["CLASSES_SCHEMA", "GROUPS_SCHEMA", "MINED_SAMPLES_SCHEMA", "MiningConfig", "MiningResult",
           "PAIRS_SCHEMA", "SWEEP_SCHEMA", "mine", "validate_config"]
