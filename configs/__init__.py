"""The training and mining configs, shipped inside the package as ``hardmine.configs``."""
