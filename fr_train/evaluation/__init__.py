"""Evaluation of a trained backbone.

* :mod:`~fr_train.evaluation.verification`: 10-fold accuracy, TPR at fixed FPR, the easy-vs-hard gap;
* :mod:`~fr_train.evaluation.erc`: the error-versus-discard curve of a quality score;
* :mod:`~fr_train.evaluation.evaluators`: the evaluators run during training (``.bin`` packs, mining pairs).
"""
