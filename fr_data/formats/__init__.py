"""Single-file formats: MXNet/InsightFace RecordIO, tar members, InsightFace .bin verification packs."""
