"""hardmine's top layer: command-line entry points and pipelines over fr_data and fr_train."""
