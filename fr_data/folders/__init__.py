"""On-disk folder and file formats, one torch-free module each: file names, schemas, open/read/write."""
