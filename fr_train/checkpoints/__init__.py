"""Checkpoints: a backbone's weights file (:mod:`~fr_train.checkpoints.weights`), the checkpoint folders
that resume a run exactly (:mod:`~fr_train.checkpoints.resume`) and the ONNX export of a trained backbone
(:mod:`~fr_train.checkpoints.export`)."""
