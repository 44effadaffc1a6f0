"""The review page's overlap section (``hardmine report ... --overlap DIR``): an overlap folder of
``hardmine overlap`` (:mod:`fr_data.folders.overlap_folder`) checked against the run, its cards as one
ranked query, and the thumbnails of the evaluation images they show.

One card per decision: an **identity** card per overlapping training class (its evaluation images beside
the class's central images), an **image** card per leaked training image (the evaluation images it
duplicates beside it). Image leaks first (the surest), then by the largest cosine. A card's key is what
its decision is about (``review.csv``, section ``overlap``; :mod:`fr_data.review.decisions`): the leaked
training image, or, for a class, its most central training image that is not itself a leaked image (so
the two kinds of card never share a key unless every image of a class leaked).

Evaluation images are read from where ``overlap.json`` says their set is (``inputs.eval_sets``: name,
path, kind) by their ``eval_key``: the image at that index of a ``.bin`` pack, the shard key of a shard
folder, the file at that relative path of an image folder (never outside it). An embeddings folder holds
no image, and a set that moved or became unreadable gives none: the card shows a placeholder saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fr_data.folders import overlap_folder as of
from fr_data.folders.report_folder import thumb_name
from fr_data.formats.verification import load_bin
from fr_data.io.atomic import naming_write_errors
from fr_data.io.errors import DataError
from fr_data.review import thumbs
from fr_data.review.select import Attachment, Picks, Query, RunTables

#: Evaluation images shown per card (the highest cosines).
EVAL_SHOWN = 4

CARD_ORDER = "match = 'image' DESC, max_cos DESC, label, train_key"

OVERLAP_CARDS = f"""
SELECT match, label, train_key, max(cos) AS max_cos,
       count(*) AS eval_images, count(DISTINCT eval_set) AS eval_sets, bool_or(same_bytes) AS same_bytes,
       list(struct_pack(eval_set, eval_key, eval_identity, cos) ORDER BY cos DESC, eval_set, eval_index)
         [1:{EVAL_SHOWN}] AS evals
FROM overlap GROUP BY match, label, train_key"""

OVERLAP_SQL = f"""
WITH c AS ({OVERLAP_CARDS} ORDER BY {CARD_ORDER} LIMIT $n),
leaked AS (SELECT DISTINCT train_key AS key FROM overlap WHERE match = 'image'),
rep AS (SELECT label, arg_max(key, score) AS key FROM (
          SELECT label, key, coalesce(center_cos, -2.0) - CASE WHEN key IN (SELECT key FROM leaked) THEN 8.0
                 ELSE 0.0 END AS score
          FROM samples WHERE label IN (SELECT label FROM c WHERE match = 'identity')) GROUP BY label)
SELECT c.*, coalesce(c.train_key, rep.key) AS card_key FROM c LEFT JOIN rep ON rep.label = c.label
ORDER BY {CARD_ORDER}"""

OVERLAP_COUNT = f"SELECT count(*) AS n FROM ({OVERLAP_CARDS})"

#: The training labels and leaked keys of an overlap folder that the run does not have (at most one row).
FOREIGN_SQL = """
SELECT o.label, o.train_key, s.label AS run_label, c.label IS NULL AS no_class FROM overlap o
LEFT JOIN classes c ON c.label = o.label LEFT JOIN samples s ON s.key = o.train_key
WHERE c.label IS NULL OR (o.train_key IS NOT NULL AND (s.key IS NULL OR s.label <> o.label))
ORDER BY o.label, o.train_key LIMIT 1"""

QUERY = Query("overlap", OVERLAP_SQL, OVERLAP_COUNT, "overlap",
              keys=(("train_key", "label"), ("card_key", "label")), labels=("label",))

NO_IMAGE = {"embeddings": "an embeddings folder holds no image"}


def eval_id(eval_set: str, eval_key: str) -> str:
    """The page's id of an evaluation image (its thumbnail's name; never a training key)."""
    return f"eval:{eval_set}:{eval_key}"


def _same_folder(a: Any, b: Any) -> bool:
    """False only when both paths exist and are different folders (a moved folder proves nothing)."""
    if not isinstance(a, str) or not isinstance(b, str) or not (Path(a).is_dir() and Path(b).is_dir()):
        return True
    return os.path.samefile(a, b)


def open_overlap(tables: RunTables, folder: Path) -> None:
    """Check that ``folder`` is an overlap folder made from the run's embeddings, and register its
    ``overlap`` view.

    Raises:
        DataError: naming the file: not an overlap folder, a malformed table, another model or embeddings
            folder than the run's, or a label / leaked image key the run does not have.
    """
    if not of.is_overlap_folder(folder):
        missing = of.INFO_FILE if not (folder / of.INFO_FILE).is_file() else of.OVERLAP_FILE
        raise DataError(folder / missing, "", "missing: not an overlap folder (write one with hardmine overlap)")
    info, table = of.read_info(folder), of.read_overlap(folder)
    info_file = folder / of.INFO_FILE
    inputs = info.get("inputs")
    if not isinstance(inputs, dict) or not isinstance(inputs.get("eval_sets"), list):
        raise DataError(info_file, "inputs.eval_sets", "missing: not an overlap.json of hardmine overlap")
    run_inputs = tables.run.get("inputs") if isinstance(tables.run.get("inputs"), dict) else {}
    if not _same_folder(inputs.get("embeddings"), run_inputs.get("embeddings")):
        raise DataError(info_file, "inputs.embeddings", f"audited {inputs['embeddings']}, but the run "
                        f"{tables.folder} was mined from {run_inputs['embeddings']}")
    model = info.get("model") if isinstance(info.get("model"), dict) else {}
    if isinstance(model.get("spec"), dict) and isinstance(tables.run.get("model"), dict) \
            and model["spec"] != tables.run["model"]:
        raise DataError(info_file, "model", f"audited with model {model['spec']}, but the run {tables.folder} "
                        f"was mined from embeddings of {tables.run['model']}")
    tables.con.register("overlap", table)
    foreign = tables.rows(FOREIGN_SQL)
    if foreign:
        r = foreign[0]
        where, what = ((f"label {r['label']}", "is not a class") if r["no_class"] else
                       (f"train_key {r['train_key']!r}", "is not a sample of that label"))
        tables.con.unregister("overlap")
        raise DataError(folder / of.OVERLAP_FILE, where, f"{what} of the run {tables.folder}: an audit of other "
                        "embeddings or shards")
    tables.present.add("overlap")


def _set_images(spec: dict[str, Any] | None, keys: list[str]) -> Iterator[tuple[str, bytes | str]]:
    """(key, image bytes or why there is none) of ``keys`` in the evaluation set ``spec``."""
    kind, path = (spec or {}).get("kind"), Path(str((spec or {}).get("path", "")))
    reason = None
    if spec is None:
        reason = "the set is not in overlap.json"
    elif kind in NO_IMAGE:
        reason = NO_IMAGE[kind]
    elif not path.exists():
        reason = f"{path} is not there any more"
    if reason is not None:
        yield from ((k, reason) for k in keys)
        return
    try:
        if kind == "bin":
            images = load_bin(path).images
            yield from ((k, images[int(k)] if k.isdigit() and int(k) < len(images) else "not in the pack")
                        for k in keys)
        elif kind == "shards":
            located = thumbs.locate(path, keys)
            yield from ((k, "not found in the shards" if k in located.missing else located.index.read_image(k))
                        for k in keys)
            located.index.close()
        else:
            yield from ((k, _folder_image(path, k)) for k in keys)
    except DataError as exc:
        yield from ((k, f"cannot read {exc}") for k in keys)


def _folder_image(folder: Path, key: str) -> bytes | str:
    """The file ``key`` of an image folder (a key leading outside the folder is refused)."""
    path = (folder / key).resolve()
    if not path.is_relative_to(folder.resolve()):
        return "the key leads outside the image folder"
    try:
        return path.read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"


def eval_images(folder: Path, picks: Picks, out: Path, size: int) -> dict[str, str]:
    """Thumbnails of the evaluation images the shown cards hold, into the report folder ``out``;
    ``eval_id`` -> why an image has none ("" when it has one)."""
    sets = {s.get("name"): s for s in of.read_info(folder)["inputs"]["eval_sets"] if isinstance(s, dict)}
    wanted: dict[str, set[str]] = {}
    for r in picks.of(QUERY.name):
        for e in r["evals"]:
            wanted.setdefault(e["eval_set"], set()).add(e["eval_key"])
    result: dict[str, str] = {}
    for name, keys in sorted(wanted.items()):
        for key, data in _set_images(sets.get(name), sorted(keys)):
            image = eval_id(name, key)
            thumb = thumbs._thumb_or_reason(data, size) if isinstance(data, bytes) else data
            if isinstance(thumb, bytes):
                with naming_write_errors(out / thumb_name(image)):
                    (out / thumb_name(image)).write_bytes(thumb)
            result[image] = "" if isinstance(thumb, bytes) else thumb
    return result


ATTACH = Attachment("overlap", "an overlap folder of hardmine overlap made from this run's embeddings: adds "
                    "the #overlap section (evaluation images beside the training classes and images they "
                    "match)", open_overlap, eval_images)

__all__ = ["ATTACH", "QUERY", "eval_id", "eval_images", "open_overlap"]
