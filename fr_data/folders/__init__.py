"""On-disk folder formats, one torch-free module each: file names, schemas, open/read/write.

* :mod:`fr_data.folders.shard_folder`: WebDataset shards + ``samples.parquet`` (``tools/shard.py``).
* :mod:`fr_data.folders.embeddings_folder`: ``embeddings.npy`` + ``index.parquet`` (``tools/embed.py``).
* :mod:`fr_data.folders.run_folder`: a mining run's manifests (``tools/mine_hard.py``).
* :mod:`fr_data.folders.report_folder`: the review page of a run (``tools/report.py``).
* :mod:`fr_data.folders.review_file`: ``review.csv``, the decisions exported by the review page.
* :mod:`fr_data.folders.experiment_folder`: ``results.parquet`` and the report of ``tools/experiment.py``.
* :mod:`fr_data.folders.pool_folder`: ``pool.parquet`` and the report of ``tools/experiment_pool.py``.

Every reader and writer of these folders goes through its module, so a file name or a column is
spelled in exactly one place.
"""
