"""A mining run whose every string field carries markup, for the review-page escaping tests.

``make_hostile_run(tmp)`` writes the run of ``builders.make_review_run`` into a run folder and a shard
folder whose names hold markup, then rewrites every string it can: suspect keys, duplicate kinds, splits,
pose and resolution bins, groups (samples, classes, groups.parquet), pair bins, an attribute column (name
and values), and run.json's thresholds, timings, model, config and file names; ``sweep.parquet`` is
removed so the page shows a note holding the run folder's path (the case that ran a handler in Chromium
before the page escaped everything). Labels are integers in the run schemas, so they carry no markup.
Every payload sets ``window.__pwned`` if it ever runs as script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from fr_data.folders.run_folder import CLASSES_SCHEMA, GROUPS_SCHEMA, MINED_SAMPLES_SCHEMA, PAIRS_SCHEMA
from fr_data.io.parquet import read_table, write_table
from tests.fr_data.review.builders import make_review_run

PAYLOADS = ('"><img src=x onerror=window.__pwned=1>',
            "</script><script>window.__pwned=2</script>",
            "javascript:window.__pwned=3",
            "{{7*7}} \u2028\u2029 <!-- -->",
            "'><svg onload=window.__pwned=4>")
#: A folder name (no "/") and an attribute column name (no '"': column quoting is another module's test).
FOLDER = 'n"><img src=x onerror=window.__pwned=5>{{x}}\u2028'
COLUMN = "<img src=x onerror=window.__pwned=6>"
#: Every tag the page is made of: anything else in the DOM came from data.
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "div", "span", "nav", "a", "label",
             "input", "button", "main", "section", "h2", "h3", "p", "b", "i", "code", "kbd", "ul", "li", "table",
             "thead", "tbody", "tr", "th", "td", "details", "summary", "pre", "article", "figure", "figcaption",
             "img", "dl", "dt", "dd", "script", "select", "option"}


def payload(i: int) -> str:
    """The i-th payload, made unique by its number (keys must be unique)."""
    return f"{PAYLOADS[i % len(PAYLOADS)]}#{i}"


@dataclass
class HostileRun:
    run: Path
    shards: Path
    suspect_keys: list[str]
    run_info: dict


def _strings(n: int, start: int) -> list[str]:
    return [payload(start + i) for i in range(n)]


def _set(table: pa.Table, name: str, values: list) -> pa.Table:
    i = table.column_names.index(name)
    return table.set_column(i, table.field(name), pa.array(values, table.field(name).type))


def hostile_samples(table: pa.Table) -> tuple[pa.Table, list[str]]:
    s = table.to_pydict()
    n = len(s["key"])
    keys = [payload(100 + i) if suspect else key for i, (key, suspect) in
            enumerate(zip(s["key"], s["suspect_mislabel"]))]
    table = _set(table, "key", keys)
    table = _set(table, "duplicate_kind", [None if k is None else payload(i) for i, k in enumerate(s["duplicate_kind"])])
    table = _set(table, "split", [payload(i) if i % 3 == 0 else s["split"][i] for i in range(n)])
    for column, start in (("pose_bin", 200), ("resolution_bin", 300), ("group", 400)):
        table = _set(table, column, _strings(n, start))
    table = table.append_column(COLUMN, pa.array(_strings(n, 500), pa.string()))
    return table, [k for k, suspect in zip(keys, s["suspect_mislabel"]) if suspect]


def hostile_run_info(info: dict) -> dict:
    return {**info,
            "thresholds": {**info["thresholds"], payload(600): payload(601), "duplicate_cos": payload(602)},
            "timings": {payload(603): {"wall_s": payload(604), "peak_rss_mb": payload(605)},
                        payload(606): payload(607)},
            "model": {payload(608): payload(609)},
            "config": {payload(610): payload(611), "nested": {payload(612): [payload(613)]}},
            "samples_manifest": payload(614)}


def make_hostile_run(tmp: Path) -> HostileRun:
    """See the module docstring; the folders are ``tmp/FOLDER`` (the run) and ``tmp/FOLDER-shards``."""
    data = make_review_run(tmp / "plain")
    run, shards = tmp / FOLDER, tmp / (FOLDER + "-shards")
    data.run.rename(run)
    data.shards.rename(shards)
    (run / "sweep.parquet").unlink()
    samples, suspect_keys = hostile_samples(read_table(run / "samples.parquet", MINED_SAMPLES_SCHEMA))
    write_table(samples, run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    classes = read_table(run / "classes.parquet", CLASSES_SCHEMA)
    write_table(_set(classes, "group", _strings(classes.num_rows, 700)), run / "classes.parquet", CLASSES_SCHEMA)
    pairs = read_table(run / "pairs.parquet", PAIRS_SCHEMA)
    for column, start in (("pose_bin_a", 800), ("resolution_bin_b", 900)):
        pairs = _set(pairs, column, _strings(pairs.num_rows, start))
    write_table(pairs, run / "pairs.parquet", PAIRS_SCHEMA)
    groups = read_table(run / "groups.parquet", GROUPS_SCHEMA)
    groups = _set(_set(groups, "group", _strings(groups.num_rows, 1000)), "source", _strings(groups.num_rows, 1100))
    write_table(groups, run / "groups.parquet", GROUPS_SCHEMA)
    info = hostile_run_info(json.loads((run / "run.json").read_text()))
    (run / "run.json").write_text(json.dumps(info))
    return HostileRun(run, shards, suspect_keys, info)
