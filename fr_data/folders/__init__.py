"""On-disk folder formats, one torch-free module each: file names, schemas and read/write functions."""
