"""Ready DuckDB queries over a mining run, shipped inside the package as ``hardmine.queries``."""
