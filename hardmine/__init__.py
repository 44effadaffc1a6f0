"""hardmine: the pipeline from face data to mined manifests to hard-sample training.

The top layer: the `hardmine` command and the end-to-end pipelines (demo, experiment), built on
``fr_data`` (data side, torch-free where it can be) and ``fr_train`` (training).
"""

__version__ = "0.1.0"
