"""Helpers every layer uses: errors, atomic writes, schema-checked Parquet, JSON and YAML config files, hashing."""
