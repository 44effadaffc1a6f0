"""A fixed pipeline scenario whose outputs must not change when the code is reorganised.

``shard_scenario`` shards a RecordIO set built from constant bytes (no image encoder, no float math: its
tar files are the same bytes on every machine); ``mining_scenario`` mines planted embeddings with the
float64 numpy k-NN reference. ``tests/golden/`` holds what the code produced before the layout moved into
fr_data/{io,formats,folders,ingest,...} (commit 98133f2), checked by ``tests/test_unchanged.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.folders.shard_folder import PROVENANCE_SCHEMA
from fr_data.formats.recordio import write_insightface
from fr_data.ingest.plan import ShardOptions
from fr_data.ingest.sharding import write_shards
from fr_data.ingest.sources import open_source
from fr_data.io.policy import ErrorPolicy
from fr_data.mining import MiningConfig, mine
from tests.fr_data.mining.planted import PlantedSpec, brute_knn, make_planted, write_emb

#: An 8 x 8 baseline JPEG (quality 50); samples differ by a comment segment after the SOI marker.
BASE_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616183123251d"
    "283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffdb0043011112121815182f"
    "1a1a2f634238426363636363636363636363636363636363636363636363636363636363636363636363636363636363636363"
    "636363636363ffc00011080008000803012200021101031101ffc4001f0000010501010101010100000000000000000102030405"
    "060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a108"
    "2342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a6364"
    "65666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
    "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffc4001f010003010101010101010101"
    "0000000000000102030405060708090a0bffc400b51100020102040403040705040400010277000102031104052131061241510"
    "761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a35363738393a434445464748"
    "494a535455565758595a636465666768696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8"
    "a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c"
    "03010002110311003f008d628edaf710451989fe65091a301edf2a3e3f16cd14514d04b73fffd9")


def jpeg(i: int) -> bytes:
    """A distinct valid JPEG: the base image with a comment segment naming ``i``."""
    text = f"hardmine sample {i}".encode()
    return BASE_JPEG[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + BASE_JPEG[2:]


def source_items() -> list[tuple[int, bytes]]:
    """60 images of 6 labels (grouped by label), two of them damaged."""
    items = [(i // 10, jpeg(i)) for i in range(60)]
    items[13] = (1, b"GIF89a not a face")            # not an image: rejected when read
    items[41] = (4, jpeg(41)[:200])                   # truncated JPEG: rejected by the decode check
    return items


def shard_scenario(folder: Path) -> Path:
    """Write the RecordIO source into ``folder/rec`` and shard it into ``folder/shards``."""
    write_insightface(folder / "rec", source_items())
    options = ShardOptions(per_shard=16, seed=3, errors=ErrorPolicy.SKIP, decode_check=1.0)
    write_shards(open_source(folder / "rec"), folder / "shards", options, workers=1)
    return folder / "shards"


def absolute_thresholds() -> MiningConfig:
    """The fixed thresholds mining used before they were calibrated from each run (issue 23): the golden
    tables were recorded with them, so they are compared under the same explicit overrides."""
    cfg = MiningConfig()
    cfg.classes.merge_cos, cfg.duplicates.cos, cfg.noise.margin_max = 0.5, 0.95, 0.0
    cfg.noise.vote_min = 0.5
    return cfg


def mining_scenario(folder: Path) -> Path:
    """Mine a small planted embedding set into ``folder/run`` (float64 numpy k-NN)."""
    x, truth = make_planted(PlantedSpec(identities=40, per_identity=(6, 16), dim=32, seed=7))
    emb = write_emb(folder / "emb", x, truth)
    mine(emb, folder / "run", absolute_thresholds(), knn=brute_knn)
    return folder / "run"


def table_digest(path: Path, root: Path, added: tuple[str, ...] = ()) -> str:
    """sha256 of a Parquet file's schema and rows, with ``root`` written as ``ROOT`` (not of the file's
    bytes: the Parquet writer's version is in them), without the columns ``added`` since the golden files."""
    table = pq.read_table(path).replace_schema_metadata(None)
    table = table.drop_columns([c for c in added if c in table.column_names])
    text = repr(table.schema) + json.dumps(table.to_pylist(), sort_keys=True, default=str)
    return hashlib.sha256(text.replace(str(root), "ROOT").encode()).hexdigest()


def shard_digests(shards: Path) -> dict[str, str]:
    """Digests of everything a shard folder holds: tar bytes, manifest rows, the listing without the
    source path (and the plan fingerprint, a hash over it)."""
    root = shards.parent
    out = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(shards.glob("*.tar"))}
    added = {"samples.parquet": tuple(PROVENANCE_SCHEMA.names)}
    out.update({p.name: table_digest(p, root, added.get(p.name, ())) for p in sorted(shards.glob("*.parquet"))})
    listing = json.loads((shards / "shards.json").read_text())
    for volatile in ("args", "fingerprint"):
        listing.pop(volatile)
    listing["plan"].pop("source")
    out["shards.json"] = hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()
    return out


def mined_tables(run: Path) -> dict[str, pa.Table]:
    """The mining run's tables, without their key-value metadata (it holds paths and times)."""
    return {name: pq.read_table(run / f"{name}.parquet").replace_schema_metadata(None)
            for name in ("samples", "classes", "pairs", "groups", "sweep")}
