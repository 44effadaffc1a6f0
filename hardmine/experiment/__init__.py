"""The hard-sample experiment (``hardmine experiment``): does training on the mining manifests beat plain
training at equal compute, on held-out hard verification packs?

Modules: ``config`` (the experiment YAML), ``arms`` (arm training configs and equal-compute step counts),
``stamps`` (stage skipping), ``stages`` (synth -> packs -> shard -> pretrain -> embed -> mine ->
fine-tune -> evaluate -> report), ``scoring`` (pack scores and metrics), ``stats`` (bootstrap intervals),
``figures`` and ``report``.
"""
