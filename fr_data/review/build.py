"""Build the review page of a mining run: picks, thumbnails, charts, HTML, published as one folder.

Stages (logged with their times): ``select`` (bounded DuckDB picks and counts), ``stats`` (chart
aggregates), ``locate`` (the shown keys in the shard index), ``thumbnails``, ``figures``, ``page``. The
folder layout and its atomic publication are ``fr_data.folders.report_folder``'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from fr_data.io.atomic import atomic_write_text
from fr_data.io.errors import ConfigError
from fr_data.folders import run_folder as rf
from fr_data.folders.report_folder import INDEX_FILE, publish, write_manifest
from fr_data.folders.review_file import format_review, read_review
from fr_data.folders.shard_folder import fingerprint, samples_path
from fr_data.io.hashing import file_sha256
from fr_data.io.publish import check_apart
from fr_data.mining.origin import check_shards_of_run
from fr_data.review import figures, page, select, stats, thumbs
from fr_data.review.attributes import attribute_values
from fr_data.review.provenance import shown_provenance

log = logging.getLogger(__name__)

DEFAULT_PER_SECTION = 200


@dataclass
class ReportResult:
    """Where the page went and what ``report.json`` says."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def index(self) -> Path:
        return self.folder / INDEX_FILE


@dataclass
class Timer:
    """Wall time per build stage."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.stages[name] = round(time.perf_counter() - t0, 3)
        log.info("report %-11s %7.2f s", name, self.stages[name])


def run_id(run: Path) -> str:
    """Identifies the run for the page's stored decisions: sha256 of ``run.json`` (else of the samples
    file's path, size and mtime)."""
    path = run / rf.RUN_FILE
    if path.is_file():
        return file_sha256(path)[:16]
    st = rf.table_path(run, "samples").stat()
    return hashlib.sha256(f"{run.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def data_id(run: Path, shards: Path) -> str:
    """Identifies the data set for the page's stored decisions, so they survive a re-mine of the same data
    (``hardmine mine --overwrite`` writes a new ``run.json``): the shard folder's fingerprint, else the
    sha256 of the run's sorted sample keys."""
    found = fingerprint(shards)
    if found is not None:
        return found[:16]
    keys = pq.read_table(rf.table_path(run, "samples"), columns=["key"]).column("key")
    digest = hashlib.sha256()
    for key in sorted(keys.to_pylist()):
        digest.update(key.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def section_counts(picks: select.Picks) -> dict[str, dict[str, int]]:
    """Flagged (in the run) and shown items per section."""
    return {q.name: {"total": picks.totals[q.name], "shown": len(picks.of(q.name))} for q in picks.queries}


def build_report(run: str | os.PathLike, shards: str | os.PathLike, out: str | os.PathLike, *,
                 per_section: int = DEFAULT_PER_SECTION, attributes: str | os.PathLike | None = None,
                 overwrite: bool = False, workers: int = 2, thumb_size: int = thumbs.THUMB_SIZE,
                 decisions: str | os.PathLike | None = None,
                 attached: dict[str, str | os.PathLike] | None = None) -> ReportResult:
    """Write the review page of mining run ``run`` (thumbnails from the shard folder ``shards``) to ``out``.

    Args:
        run: the mining run folder (``samples.parquet`` and ``classes.parquet`` required).
        shards: the shard folder the run was mined from.
        out: the report folder to create (it appears only when complete).
        per_section: items shown per section (the top ones by the section's ranking).
        attributes: an attribute table whose values are shown with the images (default: the attribute
            columns the run joined into ``samples.parquet``).
        overwrite: replace an existing ``out`` once the new one is complete.
        workers: threads decoding and resizing images (and DuckDB threads).
        thumb_size: longest side of a thumbnail in pixels.
        decisions: a ``review.csv`` whose decisions the page starts from (merged into the browser's stored
            ones once, the file winning, as the page's Import does).
        attached: folders beside the run that sections read, by option (``page.attachments()``, e.g.
            ``{"overlap": DIR}``); a section whose folder is not given is left out.

    Raises:
        ConfigError: ``per_section`` below 0.
        DataError: a missing or malformed run file, shard folder, attribute table or review file (named
            with its line); ``out`` is, contains
            or lies inside ``run``, ``shards``, ``attributes`` or an attached folder; an attached folder
            that is not of its kind or not made from this run; a shard folder that is not the one the run
            was mined from (:mod:`fr_data.mining.origin`).
    """
    attached = {name: Path(folder) for name, folder in (attached or {}).items()}
    by_option = {a.option: a for a in page.attachments()}
    unknown = sorted(set(attached) - set(by_option))
    if unknown:
        raise ConfigError(f"no section reads an attached folder {unknown[0]!r} (known: {sorted(by_option)})")
    check_apart(out, run, shards, attributes, *attached.values())  # decisions are read before anything is written: may lie in out
    prefill = format_review(read_review(decisions).decisions) if decisions is not None else None
    if per_section < 0:
        raise ConfigError(f"--per-section must be >= 0, got {per_section}")
    run, shards, timer = Path(run), Path(shards), Timer()
    with timer.stage("select"):
        tables = select.open_tables(run, threads=workers)
        check_shards_of_run(shards, run)
        for name, folder in attached.items():
            by_option[name].open(tables, folder)
        picks = select.select(tables, per_section, page.queries(attached))
        shown = picks.keys()
        attrs = attribute_values(tables, shown, attributes, samples_path(shards))
        origins = shown_provenance(samples_path(shards), shown)
    with timer.stage("stats"):
        chart_data = stats.collect(tables)
    with timer.stage("locate"):
        located = thumbs.locate(shards, shown)
    with publish(out, overwrite) as tmp:
        with timer.stage("thumbnails"):
            failed = thumbs.write_thumbnails(located, tmp, size=thumb_size, workers=workers)
            images = {k: why for name, folder in attached.items()
                      for k, why in by_option[name].images(folder, picks, tmp, thumb_size).items()}
        with timer.stage("figures"):
            drawn = {**figures.draw_all(chart_data, tmp), **figures.copy_calibration(run, tmp)}
        inputs = {"run": str(run.resolve()), "shards": str(shards.resolve()),
                  "attributes": str(Path(attributes).resolve()) if attributes else None,
                  **{name: str(folder.resolve()) for name, folder in attached.items()},
                  "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "files": sorted(tables.present)}
        data = page.PageData(run_id(run), run.resolve().name, picks, drawn, located.missing, failed, attrs,
                             tables.run, tables.notes, inputs, chart_data.splits, origins=origins,
                             data_id=data_id(run, shards), prefill=prefill, images=images)
        with timer.stage("page"):
            atomic_write_text(tmp / INDEX_FILE, page.render(data))
        manifest = {"run_id": data.run_id, "data_id": data.data_id, **inputs,
                    "decisions": str(Path(decisions).resolve()) if decisions else None, "per_section": per_section,
                    "run_json_sha256": file_sha256(run / rf.RUN_FILE) if tables.run else None,
                    "sections": section_counts(picks), "thumbnails": len(shown) - len(located.missing) - len(failed),
                    "other_images": {"thumbnails": sum(not why for why in images.values()),
                                     "without": {k: why for k, why in images.items() if why}},
                    "missing_keys": located.missing, "failed_images": failed, "figures": drawn,
                    "notes": tables.notes, "timings": timer.stages}
        write_manifest(tmp, manifest)
    tables.con.close()
    return ReportResult(Path(out), manifest)


def format_summary(result: ReportResult) -> str:
    """What ``hardmine report`` prints."""
    m = result.manifest
    parts = [f"{name} {c['shown']}/{c['total']}" for name, c in m["sections"].items()]
    lines = ["shown/flagged: " + ", ".join(parts),
             f"thumbnails {m['thumbnails']}, missing keys {len(m['missing_keys'])}, "
             f"undecodable images {len(m['failed_images'])}, charts {len(m['figures'])}"]
    lines += [f"note: {n}" for n in m["notes"]]
    return "\n".join(lines)
