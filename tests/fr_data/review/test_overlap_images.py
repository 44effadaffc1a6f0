"""Where the overlap section finds each evaluation image (``fr_data.review.overlap.eval_images``): by its
``eval_key`` in the ``.bin`` pack, shard folder or image folder ``overlap.json`` names, never outside an
image folder, with a reason for each image it cannot show; and every value of a card is escaped."""

from __future__ import annotations

import io
import json

from PIL import Image

from fr_data.folders import overlap_folder as of
from fr_data.folders.report_folder import thumb_name
from fr_data.formats.verification import save_bin
from fr_data.review import overlap as ov
from fr_data.review.page import PageData, overlap_item
from fr_data.review.select import Picks
from fr_data.review.thumbs import make_thumbnail
from tests.fr_train.data.builders import face_jpeg, make_shards


def _picks(evals: list[tuple[str, str]]) -> Picks:
    rows = [{"evals": [{"eval_set": s, "eval_key": k, "eval_identity": None, "cos": 0.9} for s, k in evals]}]
    return Picks(10, rows={"overlap": rows})


def test_images_come_from_the_pack_the_shards_and_the_folder_or_say_why_not(tmp_path):
    save_bin(tmp_path / "lfw.bin", [face_jpeg(0, 0), face_jpeg(1, 0)], [True])
    keys = make_shards(tmp_path / "shards", [0, 0, 1])
    (tmp_path / "faces" / "p1").mkdir(parents=True)
    (tmp_path / "faces" / "p1" / "a.jpg").write_bytes(face_jpeg(2, 0))
    (tmp_path / "secret.jpg").write_bytes(face_jpeg(3, 0))
    audit = tmp_path / "OVL"
    audit.mkdir()
    sets = [("lfw.bin", tmp_path / "lfw.bin", "bin"), ("shards", tmp_path / "shards", "shards"),
            ("faces", tmp_path / "faces", "images"), ("emb", tmp_path / "shards", "embeddings"),
            ("gone", tmp_path / "nowhere", "images")]
    of.write_info(audit, {"inputs": {"eval_sets": [{"name": n, "path": str(p), "kind": k} for n, p, k in sets]}})
    wanted = [("lfw.bin", "1"), ("lfw.bin", "7"), ("shards", keys[2]), ("shards", "999999999"),
              ("faces", "p1/a.jpg"), ("faces", "../secret.jpg"), ("emb", "000000001"), ("gone", "x.jpg"),
              ("other", "0")]
    out = tmp_path / "report"
    (out / "img").mkdir(parents=True)
    found = ov.eval_images(audit, _picks(wanted), out, 32)
    assert found == {
        "eval:lfw.bin:1": "", "eval:lfw.bin:7": "not in the pack", f"eval:shards:{keys[2]}": "",
        "eval:shards:999999999": "not found in the shards", "eval:faces:p1/a.jpg": "",
        "eval:faces:../secret.jpg": "the key leads outside the image folder",
        "eval:emb:000000001": "an embeddings folder holds no image",
        "eval:gone:x.jpg": f"{tmp_path / 'nowhere'} is not there any more",
        "eval:other:0": "the set is not in overlap.json"}
    written = sorted(p.name for p in (out / "img").iterdir())
    assert written == sorted(thumb_name(k).split("/")[1] for k, why in found.items() if not why)
    thumb = (out / thumb_name("eval:lfw.bin:1")).read_bytes()
    assert thumb == make_thumbnail(face_jpeg(1, 0), 32) != make_thumbnail(face_jpeg(0, 0), 32)  # index 1
    assert (out / thumb_name("eval:faces:p1/a.jpg")).read_bytes() == make_thumbnail(face_jpeg(2, 0), 32)
    shard_thumb = (out / thumb_name(f"eval:shards:{keys[2]}")).read_bytes()
    with Image.open(io.BytesIO(shard_thumb)) as im:
        assert max(im.size) == 32

HOSTILE = '"><img src=x onerror=alert(1)>'


def test_a_card_escapes_every_value():
    row = {"label": 3, "match": "image", "train_key": HOSTILE, "card_key": HOSTILE, "same_bytes": True,
           "max_cos": 0.99, "eval_images": 1, "eval_sets": 1,
           "evals": [{"eval_set": HOSTILE, "eval_key": HOSTILE, "eval_identity": HOSTILE, "cos": 0.99}]}
    page = PageData("run", "RUN", Picks(1), images={ov.eval_id(HOSTILE, HOSTILE): HOSTILE})
    text = str(overlap_item(page, row, ("keep", "drop")))
    assert "<img src=x" not in text and text.count("&lt;img src=x onerror=alert(1)&gt;") >= 4
    assert json.dumps(text)  # plain text, a data block can carry it
