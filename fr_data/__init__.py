"""hardmine data side: ingestion (RecordIO, image folders, synthetic faces), WebDataset shards,
embeddings, k-NN search and hard-sample mining into Parquet manifests.

``fr_data`` never imports ``fr_train``.
"""

__version__ = "0.1.0"
