"""Read-only DuckDB views over a mining run folder and its shard manifest."""
