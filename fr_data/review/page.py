"""The review page as one HTML document: sections with their element ids, reviewable items, inline CSS/JS.

Element contracts (the browser tests rely on them): sections ``#overview``, ``#suspects``,
``#duplicates``, ``#merges``, ``#hard-pairs``, ``#quality``, ``#distributions`` (and ``#missing`` when
keys were not found); every reviewable item is an element ``.item`` with ``data-key`` holding controls
``[data-decision=keep]`` and ``[data-decision=drop]``; a merge item also carries ``data-label`` and
``data-other-label`` and holds ``[data-decision=merge]`` and ``[data-decision=keep]``; ``#export``
downloads ``review.csv`` (format: ``fr_data.folders.review_file``). Decisions live in ``localStorage``
under ``hardmine-review:<run id>`` (``body[data-run]``). The page needs no network: images and charts
are relative paths inside the report folder, CSS and JS are inlined from this package.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from fr_data.folders.report_folder import thumb_name
from fr_data.review.select import CENTRAL, Picks

SECTIONS = (("overview", "Overview"), ("suspects", "Suspected mislabels"), ("duplicates", "Duplicates"),
            ("merges", "Merge candidates"), ("hard-pairs", "Hard pairs"), ("quality", "Quality"),
            ("distributions", "Distributions"))


def esc(value: Any) -> str:
    """Text escaped for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 3) -> str:
    """A number for display (an en dash for null)."""
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:.{digits}f}".replace("-", "\u2212")
    return f"{value:,}" if isinstance(value, int) else str(value)


@dataclass
class PageData:
    """Everything the page shows.

    Attributes:
        run_id: identifies the run (localStorage key of the decisions).
        title: the run folder's name.
        picks: the ranked rows and counts (``select.Picks``).
        figures: chart name -> relative PNG path.
        missing: keys the shards do not hold (shown as placeholders and listed in ``#missing``).
        failed: key -> why its image could not be made into a thumbnail.
        attributes: key -> attribute values shown with its image.
        run: ``run.json``.
        notes: what was missing or left out.
        inputs: what the page was built from (run, shards, attributes, run files found, time).
        splits: samples per difficulty split.
    """

    run_id: str
    title: str
    picks: Picks
    figures: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- images
def image(page: PageData, key: str, label: Any, cls: str = "") -> str:
    """One thumbnail (or a placeholder naming why there is none), with key, label and attributes on hover."""
    attrs = page.attributes.get(key, {})
    tip = " \u00b7 ".join([key, f"label {label}"] + [f"{k}={v}" for k, v in attrs.items()])
    if key in page.failed or key in page.missing:
        why = page.failed.get(key, "not found in the shards")
        return f'<div class="thumb {cls} missing" title="{esc(tip)}: {esc(why)}">{esc(why)}</div>'
    return (f'<img class="thumb {cls}" src="{esc(thumb_name(key))}" alt="{esc(key)}" title="{esc(tip)}" '
            'decoding="async">')


def strip(page: PageData, label: Any, caption: str, size: str = "small") -> str:
    """The central images of a label, captioned."""
    keys = page.picks.central.get(label, [])[:CENTRAL]
    images = "".join(image(page, k, label, size) for k in keys) or '<span class="none">no image</span>'
    return (f'<div class="strip"><div class="strip-label">{caption}</div>'
            f'<div class="imgs">{images}</div></div>')


def metrics(values: dict[str, Any]) -> str:
    """Named numbers as a definition list."""
    cells = "".join(f"<div><dt>{esc(k)}</dt><dd>{num(v)}</dd></div>" for k, v in values.items())
    return f'<dl class="metrics">{cells}</dl>'


def buttons(decisions: tuple[str, ...]) -> str:
    """The decision controls of an item."""
    names = {"keep": "Keep", "drop": "Drop", "merge": "Merge"}
    return '<div class="decide">' + "".join(
        f'<button type="button" data-decision="{d}" aria-pressed="false">{names[d]}</button>'
        for d in decisions) + "</div>"


def attribute_line(page: PageData, key: str) -> str:
    attrs = page.attributes.get(key)
    if not attrs:
        return ""
    text = " \u00b7 ".join(f"{k} {v}" for k, v in attrs.items())
    return f'<div class="attrs" title="{esc(text)}">{esc(text)}</div>'



def key_line(page: PageData, key: str) -> str:
    """The sample key (selectable text) and its attributes."""
    return f'<div class="key" title="{esc(key)}">{esc(key)}</div>{attribute_line(page, key)}'


def item(kind: str, key: str, body: str, decisions: tuple[str, ...], extra: str = "") -> str:
    """A reviewable item: ``data-key``, the body, then its decision controls."""
    return (f'<article class="item {kind}" data-key="{esc(key)}" data-section="{kind}"{extra} tabindex="0">'
            f"{body}{buttons(decisions)}</article>")


def figure(page: PageData, key: str, label: Any, caption: str) -> str:
    return f'<figure>{image(page, key, label, "big")}<figcaption>{caption}</figcaption></figure>'


# ------------------------------------------------------------------------------------------------ items
def suspect_item(page: PageData, r: dict[str, Any]) -> str:
    """The image, central images of its stored and of its suspected label, and the three scores."""
    key, label, other = r["key"], r["label"], r["suspected_label"]
    strips = (strip(page, label, f"stored label {esc(label)}: central images")
              + strip(page, other, f"suspected label {esc(other)}: central images"))
    body = (f'<div class="row">{figure(page, key, label, f"label {esc(label)}")}'
            f'<div class="strips">{strips}</div></div>'
            + metrics({"center_cos": r["center_cos"], "margin": r["margin"], "knn_agreement": r["knn_agreement"]})
            + key_line(page, key))
    return item("suspects", key, body, ("keep", "drop"))


def duplicate_item(page: PageData, r: dict[str, Any]) -> str:
    """The copy (the sample mining would remove) beside its kept twin; cosine and kind."""
    key, twin, kind = r["key"], r["duplicate_of"], r["duplicate_kind"] or "unknown"
    copy = figure(page, key, r["label"], "copy \u00b7 label " + esc(r["label"]))
    kept = figure(page, twin, r["twin_label"], "kept twin \u00b7 label " + esc(r["twin_label"]))
    badge = f'<div class="badges"><span class="badge {esc(kind)}">{esc(kind.replace("_", " "))}</span></div>'
    side = f'<div class="side">{badge}{metrics({"cosine": r["duplicate_cos"]})}{key_line(page, key)}</div>'
    return item("duplicates", key, f'<div class="row">{copy}{kept}{side}</div>', ("keep", "drop"))


def merge_item(page: PageData, r: dict[str, Any]) -> str:
    """Central images of both labels; ``data-key`` is the first central image of ``data-label``."""
    a, b = r["label"], r["other_label"]
    rep = (page.picks.central.get(a) or [""])[0]
    strips = (strip(page, a, f"label {esc(a)} ({num(r['n'])} images)", "medium")
              + strip(page, b, f"label {esc(b)} ({num(r['other_n'])} images)", "medium"))
    body = (f'<div class="strips wide">{strips}</div>'
            + metrics({"nearest_cos": r["nearest_cos"], "neighbour_mix": r["neighbour_mix"]}))
    extra = f' data-label="{esc(a)}" data-other-label="{esc(b)}"'
    return item("merges", rep, body, ("merge", "keep"), extra)


def pair_card(page: PageData, r: dict[str, Any]) -> str:
    """Two images side by side with their cosine (not reviewable)."""
    a = figure(page, r["key_a"], r["label_a"], "label " + esc(r["label_a"]))
    b = figure(page, r["key_b"], r["label_b"], "label " + esc(r["label_b"]))
    return f'<article class="card pair"><div class="row two">{a}{b}</div>{metrics({"cos": r["cos"]})}</article>'


def quality_item(page: PageData, r: dict[str, Any]) -> str:
    """A low-quality image with its scores and bins."""
    key = r["key"]
    scores = metrics({"quality_cr": r["quality_cr"], "quality_sdd": r["quality_sdd"],
                      "difficulty": r["difficulty"], "pose": r["pose_bin"], "resolution": r["resolution_bin"]})
    body = f'<div class="row">{figure(page, key, r["label"], "label " + esc(r["label"]))}{scores}</div>'
    return item("quality", key, body + key_line(page, key), ("keep", "drop"))


# --------------------------------------------------------------------------------------------- sections
def section(sid: str, body: str) -> str:
    """A section with its contract id and heading."""
    title = dict(SECTIONS).get(sid, sid)
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def listing_intro(shown: int, total: int, what: str, ranking: str) -> str:
    """'Showing n of m ...' or, for an empty list, that nothing was flagged."""
    if total == 0:
        return f'<p class="empty">Nothing was flagged: no {what} in this run.</p>'
    return f'<p class="intro">Showing <b>{shown:,}</b> of <b>{total:,}</b> {what}, {ranking}.</p>'


def grid(cards: list[str], cls: str = "grid") -> str:
    return f'<div class="{cls}">' + "".join(cards) + "</div>" if cards else ""


def chart(page: PageData, name: str, alt: str) -> str:
    """A chart image, or a note when there was no data to draw it."""
    path = page.figures.get(name)
    if path is None:
        return f'<p class="empty">No data for the chart "{esc(alt)}".</p>'
    return f'<figure class="chart"><img src="{esc(path)}" alt="{esc(alt)}"></figure>'


@dataclass(frozen=True)
class Listing:
    """A section that is a ranked list of reviewable items."""

    rows: str  # attribute of Picks (and key of Picks.totals)
    render: Any  # (page, row) -> HTML
    what: str
    ranking: str
    grid: str = "grid"


LISTINGS = {
    "suspects": Listing("suspects", suspect_item, "suspected mislabels",
                        "ranked by margin (most negative first: closest to another identity)"),
    "duplicates": Listing("duplicates", duplicate_item, "near-duplicates",
                          "cross-class copies first, then by cosine; <i>drop</i> removes the copy, "
                          "<i>keep</i> keeps it even with <code>drop_duplicates</code>"),
    "merges": Listing("merges", merge_item, "merge candidate label pairs",
                      "ranked by centre-to-centre cosine; <i>merge</i>: one person under two labels, "
                      "<i>keep</i>: two people, never merge", "grid wide"),
}


def listing_section(page: PageData, sid: str) -> str:
    """``#suspects``, ``#duplicates`` or ``#merges``: the intro and the items."""
    spec = LISTINGS[sid]
    rows = getattr(page.picks, spec.rows)
    intro = listing_intro(len(rows), page.picks.totals[spec.rows], spec.what, spec.ranking)
    return section(sid, intro + grid([spec.render(page, r) for r in rows], spec.grid))


def hard_pairs_section(page: PageData) -> str:
    p = page.picks
    if "pairs" not in page.inputs.get("files", ()):
        return section("hard-pairs", '<p class="empty">This run has no pairs.parquet.</p>')
    pos = listing_intro(len(p.hard_pos), p.totals["hard_pos"], "hard positive pairs",
                        "same label, lowest cosine first")
    neg = listing_intro(len(p.hard_neg), p.totals["hard_neg"], "hard negative pairs",
                        "different labels, highest cosine first")
    return section("hard-pairs", f'<h3>Hardest positive pairs</h3>{pos}'
                   + grid([pair_card(page, r) for r in p.hard_pos], "grid pairs")
                   + f'<h3>Hardest negative pairs</h3>{neg}'
                   + grid([pair_card(page, r) for r in p.hard_neg], "grid pairs"))


def quality_section(page: PageData) -> str:
    p = page.picks
    charts = (chart(page, "quality", "Image quality of all samples")
              + chart(page, "difficulty", "Difficulty of all samples, by split")
              + chart(page, "difficulty_bins", "Mean difficulty by pose and resolution bin")
              + chart(page, "group_fpr", "False positive rate per group"))
    intro = listing_intro(len(p.low_quality), p.totals["quality"], "scored images",
                          "lowest CR-FIQA quality first (suspects are in their own section)")
    return section("quality", f'<div class="charts">{charts}</div><h3>Lowest-quality images</h3>{intro}'
                   + grid([quality_item(page, r) for r in p.low_quality], "grid small"))


def distributions_section(page: PageData) -> str:
    text = ('<p class="intro">The DDL view of the data: per split, each sample\'s cosine to its own class centre '
            '(positive) and to the nearest other class centre (negative); the more the two overlap, the '
            'harder the split. Below, the cosines of the mined teacher and student pairs.</p>')
    return section("distributions", text + '<div class="charts">'
                   + chart(page, "similarity", "Positive and negative similarities per split")
                   + chart(page, "pairs", "Cosine of the mined pairs") + "</div>")


def missing_section(page: PageData) -> str:
    """Keys the shards do not hold and images that could not be decoded (absent when there are none)."""
    rows = [(k, "not found in the shards") for k in page.missing] + sorted(page.failed.items())
    if not rows:
        return ""
    items = "".join(f"<li><code>{esc(k)}</code> \u2013 {esc(why)}</li>" for k, why in rows)
    return (f'<section id="missing"><h2>Missing images</h2><p class="intro">{len(rows):,} shown sample(s) '
            f'have no image: they appear as grey placeholders.</p><ul class="missing-list">{items}</ul></section>')


# --------------------------------------------------------------------------------------------- overview
def table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def count_cards(page: PageData) -> str:
    t = page.picks.totals
    splits = " \u00b7 ".join(f"{esc(k)} {v:,}" for k, v in page.splits.items()) or "\u2013"
    cards = [("samples", f"{t['samples']:,}", f"{t['valid_vectors']:,} with a valid vector"),
             ("classes", f"{t['classes']:,}", "labels"),
             ("suspected mislabels", f"{t['suspects']:,}", '<a href="#suspects">review</a>'),
             ("duplicates", f"{t['duplicates']:,}", f"{t['cross_class_duplicates']:,} cross-class \u00b7 "
                                                    '<a href="#duplicates">review</a>'),
             ("merge candidates", f"{t['merges']:,} pairs", f"{t['merge_candidate_classes']:,} classes \u00b7 "
                                                           '<a href="#merges">review</a>'),
             ("splits", "", splits)]
    return '<div class="counts">' + "".join(
        f'<div class="count"><div class="what">{esc(w)}</div><div class="n">{n}</div><div class="sub">{s}</div>'
        "</div>" for w, n, s in cards) + "</div>"


def section_table(page: PageData) -> str:
    p, t = page.picks, page.picks.totals
    rows = [("suspects", "Suspected mislabels", t["suspects"], len(p.suspects)),
            ("duplicates", "Duplicates", t["duplicates"], len(p.duplicates)),
            ("merges", "Merge candidates (label pairs)", t["merges"], len(p.merges)),
            ("hard-pairs", "Hard positive / negative pairs", f"{t['hard_pos']:,} / {t['hard_neg']:,}",
             f"{len(p.hard_pos):,} / {len(p.hard_neg):,}"),
            ("quality", "Lowest-quality images and quality charts", t["quality"], len(p.low_quality)),
            ("distributions", "Similarity distributions per split", "charts", "charts")]
    return table([(f'<a href="#{sid}">{esc(name)}</a>', num(total), num(shown))
                  for sid, name, total, shown in rows], ("section", "in the run", "shown"))


def run_tables(page: PageData) -> str:
    run = page.run
    inputs = [(esc(k), f"<code>{esc(v)}</code>") for k, v in page.inputs.items() if k != "files" and v]
    if run.get("model"):
        inputs.append(("model", f"<code>{esc(json.dumps(run['model'], default=str))}</code>"))
    blocks = ["<div><h3>Inputs</h3>" + table(inputs, ("input", "value")) + "</div>"]
    thresholds = run.get("thresholds") or {}
    if thresholds:
        blocks.append("<div><h3>Thresholds</h3>" + table([(esc(k), num(v, 4)) for k, v in thresholds.items()],
                                                          ("threshold", "value")) + "</div>")
    bins = run.get("bins") or {}
    if bins.get("pose_source") or bins.get("resolution_source"):  # which signal the pose bins came from
        rows = [("pose bins", esc(bins.get("pose_source") or "\u2013")),
                ("resolution bins", esc(bins.get("resolution_source") or "\u2013"))]
        blocks.append("<div><h3>Bins from</h3>" + table(rows, ("bins", "source")) + "</div>")
    timings = run.get("timings") or {}
    if timings:
        rows = [(esc(name), num(s.get("wall_s"), 2), num(s.get("peak_rss_mb"), 0)) for name, s in timings.items()]
        blocks.append("<div><h3>Mining stage times</h3>"
                      + table(rows, ("stage", "wall time (s)", "peak RSS (MB)")) + "</div>")
    out = '<div class="tables">' + "".join(blocks) + "</div>"
    if run.get("config"):
        text = yaml.safe_dump(run["config"], sort_keys=False, default_flow_style=None)
        out += f"<details><summary>Mining config</summary><pre>{esc(text)}</pre></details>"
    return out


HOW_TO = ('<div class="howto"><b>Reviewing.</b> Decide items with their buttons (click again to undo) or '
          'with keys: <kbd>j</kbd>/<kbd>k</kbd> next/previous item, <kbd>a</kbd> keep, <kbd>d</kbd> drop, '
          '<kbd>m</kbd> merge, <kbd>u</kbd> undo. Decisions stay in this browser across reloads; '
          '<b>Export review.csv</b> saves them for training (<code>data.selection.review</code>) and for '
          '<code>hardmine query</code> (the <code>review</code> view, when the file is in the run folder).</div>')


def overview_section(page: PageData) -> str:
    t = page.picks.totals
    nothing = ""
    if t["suspects"] + t["duplicates"] + t["merges"] == 0:
        nothing = ('<p class="empty" id="nothing-flagged">Nothing was flagged in this run: no suspected '
                   'mislabels, no duplicates and no merge candidates.</p>')
    notes = list(page.notes)
    if page.missing or page.failed:
        notes.append(f'{len(page.missing) + len(page.failed):,} shown sample(s) have no image: see '
                     '<a href="#missing">missing images</a>')
    note_list = ('<ul class="notes">' + "".join(f"<li>{n}</li>" for n in notes) + "</ul>") if notes else ""
    return section("overview", nothing + count_cards(page) + note_list + HOW_TO + section_table(page)
                   + run_tables(page))


# --------------------------------------------------------------------------------------------- document
def _asset(name: str) -> str:
    return resources.files("fr_data.review").joinpath(name).read_text(encoding="utf-8")


def header(page: PageData) -> str:
    t = page.picks.totals
    counts = {"suspects": t["suspects"], "duplicates": t["duplicates"], "merges": t["merges"]}
    links = "".join(f'<a href="#{sid}">{esc(name)}'
                    + (f' <span class="pill">{counts[sid]:,}</span>' if sid in counts else "") + "</a>"
                    for sid, name in SECTIONS)
    return (f'<header id="top"><div class="brand">hardmine review <span class="run">{esc(page.title)}</span></div>'
            f'<nav>{links}</nav><div class="tools"><span id="review-status">0 decided</span>'
            '<label class="toggle"><input type="checkbox" id="hide-decided"> hide decided</label>'
            '<button type="button" id="export">Export review.csv</button>'
            '<button type="button" id="clear" class="quiet">Clear</button></div>'
            '<div id="storage-warning" hidden>This browser does not keep decisions for pages opened from '
            'disk: export review.csv before closing the page.</div></header>')


CSP = ("default-src 'none'; img-src 'self' file:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")


def render(page: PageData) -> str:
    """The whole page (UTF-8 HTML text)."""
    main = "".join([overview_section(page), *(listing_section(page, sid) for sid in LISTINGS),
                    hard_pairs_section(page), quality_section(page),
                    distributions_section(page), missing_section(page)])
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>hardmine review \u2013 {esc(page.title)}</title><style>{_asset("page.css")}</style></head>'
            f'<body data-run="{esc(page.run_id)}">{header(page)}<main>{main}</main>'
            f'<script>{_asset("page.js")}</script></body></html>\n')
