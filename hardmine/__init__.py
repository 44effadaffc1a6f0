"""hardmine's top layer: pipelines and commands built on ``fr_data`` (data) and ``fr_train`` (training)."""
