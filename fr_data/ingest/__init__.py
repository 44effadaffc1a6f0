"""Ingestion: face data sources (RecordIO, image folders) turned into WebDataset shards + a sample manifest."""
