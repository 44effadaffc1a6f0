"""Hard-sample mining: from embeddings of every training image, find what is easy, hard, mislabelled
or duplicated, and cut variation splits, into Parquet manifests for DuckDB and for training.

Entry point: ``mine(embeddings, out, config, samples=..., attributes=..., knn=...)`` (what
``hardmine mine`` runs). Modules, one concept each: ``centres`` (class centres, leave-one-out
centre cosine, nearest classes, merge candidates), ``neighbours`` (sample k-NN, exact or candidate
search), ``noise`` (k-NN label vote, suspects), ``duplicates``, ``merges``, ``quality`` (SDD-FIQA,
CR-FIQA, instance FPR), ``difficulty``, ``pairs``, ``splits`` (bins, attribute joins), ``groups``
(k-means groups, bias report), ``tables`` (the run folder's tables), ``config``, ``run``. The run
folder's file names and schemas live in :mod:`fr_data.folders.run_folder`.
"""

from fr_data.mining.config import MiningConfig, validate_config
from fr_data.mining.run import MiningResult, mine

__all__ = ["MiningConfig", "MiningResult", "mine", "validate_config"]
