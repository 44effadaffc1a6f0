"""On-disk folder formats, one torch-free module each: file names, schemas, open/read/write.

* :mod:`fr_data.folders.shard_folder`: WebDataset shards + ``samples.parquet`` (``hardmine shard``).
* :mod:`fr_data.folders.embeddings_folder`: ``embeddings.npy`` + ``index.parquet`` (``hardmine embed``).
* :mod:`fr_data.folders.run_folder`: a mining run's manifests (``hardmine mine``).
* :mod:`fr_data.folders.report_folder`: the review page of a run (``hardmine report``).
* :mod:`fr_data.folders.review_file`: ``review.csv``, the decisions exported by the review page.
* :mod:`fr_data.folders.experiment_folder`: ``results.parquet`` and the report of ``hardmine experiment``.
* :mod:`fr_data.folders.pool_folder`: ``pool.parquet`` and the report of ``hardmine experiment-pool``.

Every reader and writer of these folders goes through its module, so a file name or a column is
spelled in exactly one place.
"""
