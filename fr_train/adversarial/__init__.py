"""Adversarial examples against face-recognition backbones: L-inf PGD (:mod:`~fr_train.adversarial.pgd`),
adversarial training (``adversarial:`` section, :mod:`~fr_train.adversarial.config`; the step in
:mod:`~fr_train.adversarial.training`: AFA with a dual-BN backbone, or standard PGD adversarial training).
Verification under attack lives in :mod:`fr_train.evaluation.attack`."""
