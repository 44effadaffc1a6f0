"""The review page as one HTML document: sections with their element ids, reviewable items, inline CSS/JS.

Element contracts (the browser tests rely on them): sections ``#overview``, ``#suspects``,
``#duplicates``, ``#merges``, ``#hard-pairs``, ``#quality``, ``#overlap`` (with ``--overlap``),
``#distributions`` (and ``#missing`` when keys were not found); every reviewable item is an element ``.item`` with ``data-key`` and
``data-section`` holding controls ``[data-decision=keep]`` and ``[data-decision=drop]`` (a suspect also
``[data-decision=relabel]``, its item carrying ``data-relabel``, the suspected label); a merge item also
carries ``data-label`` and ``data-other-label`` and holds ``[data-decision=merge]`` and
``[data-decision=keep]`` ("keep apart"); an overlap item carries ``data-match`` (``identity`` or
``image``) and ``data-train-label``, its ``data-key`` the training image its decision is about; ``#export`` downloads ``review.csv`` and ``#import`` reads one
(format: ``fr_data.folders.review_file``). Decisions live in ``localStorage`` under
``hardmine-review:<data set id>`` (``body[data-data]``: the shard folder's fingerprint, so a re-mine of
the same data finds them), one per (section, key) and one per label pair.

Fast at any size: a list's items are not in the HTML as elements but as data (``data_block``: each item's
escaped HTML, key, labels, metric values, bins and file); ``page.js`` renders them in chunks near the viewport
(``.lazy`` lists, an IntersectionObserver), filters and sorts the data, and repaints one item per
decision. The page needs no network: images and charts are relative paths inside the report folder, CSS
and JS are inlined from this package.

Every value from data or the file system reaches the HTML through ``fr_data.review.markup`` (constant
templates, escaped values); the page's Content-Security-Policy allows only its own inline style and
script (by their sha256), no inline handler, no plugin, no form target and no ``<base>``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from fr_data.folders.report_folder import thumb_name
from fr_data.review import overlap as ov
from fr_data.review import select as sq
from fr_data.review.markup import Markup, csp_hash, data_block, html, inline, join, local_src
from fr_data.review.provenance import Provenance
from fr_data.review.select import CENTRAL, Attachment, Picks, Query

DOT = " \u00b7 "
NOTHING = Markup()


def num(value: Any, digits: int = 3) -> str:
    """A number for display (an en dash for null; any other value as its text, escaped by the caller)."""
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:.{digits}f}".replace("-", "\u2212")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


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
        notes: what was missing or left out (plain text, escaped like every value).
        inputs: what the page was built from (run, shards, attributes, run files found, time).
        splits: samples per difficulty split.
        origins: the shown images' files and the shown labels' identity names (shard manifest).
        data_id: identifies the data set (localStorage key of the decisions; default ``run_id``).
        prefill: ``review.csv`` text whose decisions the page starts from (``--decisions``), or None.
        images: images shown that are not in the shards (an attachment's, e.g. evaluation images): id ->
            why it has no thumbnail ("" when it has one, at ``report_folder.thumb_name(id)``).
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
    origins: Provenance = field(default_factory=Provenance)
    data_id: str = ""
    prefill: str | None = None
    images: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- images
def tooltip(page: PageData, key: str, label: Any) -> str:
    """An image's hover text: its file (when the shard manifest names it), key, label and attributes."""
    attrs = page.attributes.get(key, {})
    path = page.origins.paths.get(key)
    return DOT.join(([path] if path else []) + [key, label_text(page, label)] + [f"{k}={v}" for k, v in attrs.items()])


def image(page: PageData, key: str, label: Any, cls: str = "") -> Markup:
    """One thumbnail (or a placeholder naming why there is none), with key, label and attributes on hover."""
    tip = tooltip(page, key, label)
    if key in page.failed or key in page.missing:
        why = page.failed.get(key, "not found in the shards")
        return html('<div class="thumb {} missing" title="{}: {}">{}</div>', cls, tip, why, why)
    return html('<img class="thumb {}" src="{}" alt="{}" title="{}" data-label="{}" loading="lazy">',
                cls, local_src(thumb_name(key)), key, tip, label)


def strip(page: PageData, label: Any, caption: Markup, size: str = "small") -> Markup:
    """The central images of a label, captioned: ``page.js`` fills ``data-central`` from the page's
    ``strips`` data block (``strip_images``: each label's images once, not once per card showing them)."""
    return html('<div class="strip"><div class="strip-label">{}</div><div class="imgs {}" data-central="{}">'
                '</div></div>', caption, size, label)


def strip_images(page: PageData, label: Any) -> Markup:
    """The central images of a label (sized by their strip's class), or a note that there is none."""
    keys = page.picks.central.get(label, [])[:CENTRAL]
    return join(image(page, k, label) for k in keys) or Markup('<span class="none">no image</span>')


def metrics(values: dict[str, Any]) -> Markup:
    """Named values as a definition list."""
    cells = join(html("<div><dt>{}</dt><dd>{}</dd></div>", k, num(v)) for k, v in values.items())
    return html('<dl class="metrics">{}</dl>', cells)


#: What each decision's button says (a section may name its own: merges keep two labels "apart").
BUTTONS = {"keep": "Keep", "drop": "Drop", "merge": "Merge", "relabel": "Relabel", "keep-apart": "Keep apart"}


def buttons(decisions: tuple[str, ...]) -> Markup:
    """The decision controls of an item (``value`` or ``value:button`` with a ``BUTTONS`` name), as
    ``page.js`` builds them from the item's ``data-decisions`` (tests and other consumers read it here)."""
    def button(d: str) -> Markup:
        value, _, name = d.partition(":")
        return html('<button type="button" data-decision="{}" aria-pressed="false">{}</button>', value,
                    BUTTONS[name or value])
    return html('<div class="decide">{}</div>', join(button(d) for d in decisions))


def attribute_line(page: PageData, key: str) -> Markup:
    attrs = page.attributes.get(key)
    if not attrs:
        return NOTHING
    text = DOT.join(f"{k} {v}" for k, v in attrs.items())
    return html('<div class="attrs" title="{}">{}</div>', text, text)


def label_text(page: PageData, label: Any) -> str:
    """``label 0``, or ``0000045 (label 0)`` when the label's identity name is known and says more."""
    name = page.origins.identities.get(label)
    return f"{name} (label {label})" if name is not None and name != str(label) else f"label {label}"


def key_line(page: PageData, key: str) -> Markup:
    """The image's file and sample key (selectable text), and its attributes."""
    path = page.origins.paths.get(key)
    text = f"{path}{DOT}{key}" if path else key
    return html('<div class="key" title="{}">{}</div>{}', text, text, attribute_line(page, key))


def item(kind: str, key: str, body: Markup, decisions: tuple[str, ...], extra: Markup = NOTHING) -> Markup:
    """A reviewable item: ``data-key``, the body; ``page.js`` adds its decision controls (``buttons``) from
    ``data-decisions`` when it renders the item (written once per item, not as markup per item)."""
    return html('<article class="item {}" data-key="{}" data-section="{}" data-decisions="{}"{} tabindex="0">{}'
                '</article>', kind, key, kind, " ".join(decisions), extra, body)


def figure(page: PageData, key: str, label: Any, caption: Any) -> Markup:
    return html("<figure>{}<figcaption>{}</figcaption></figure>", image(page, key, label, "big"), caption)


# ------------------------------------------------------------------------------------------------ items
def suspect_item(page: PageData, r: dict[str, Any], decisions: tuple[str, ...]) -> Markup:
    """The image, central images of its stored and of its suspected label, and the three scores."""
    key, label, other = r["key"], r["label"], r["suspected_label"]
    strips = (strip(page, label, html("stored {}: central images", label_text(page, label)))
              + strip(page, other, html("suspected {}: central images", label_text(page, other))))
    body = html('<div class="row">{}<div class="strips">{}</div></div>{}{}',
                figure(page, key, label, label_text(page, label)), strips,
                metrics({"center_cos": r["center_cos"], "margin": r["margin"], "knn_agreement": r["knn_agreement"]}),
                key_line(page, key))
    return item("suspects", key, body, decisions, html(' data-relabel="{}"', other))


def duplicate_item(page: PageData, r: dict[str, Any], decisions: tuple[str, ...]) -> Markup:
    """The copy (the sample mining would remove) beside its kept twin; cosine and kind."""
    key, twin, kind = r["key"], r["duplicate_of"], r["duplicate_kind"] or "unknown"
    copy = figure(page, key, r["label"], f"copy{DOT}{label_text(page, r['label'])}")
    kept = figure(page, twin, r["twin_label"], f"kept twin{DOT}{label_text(page, r['twin_label'])}")
    badge = html('<div class="badges"><span class="badge {}">{}</span></div>', kind, kind.replace("_", " "))
    side = html('<div class="side">{}{}{}</div>', badge, metrics({"cosine": r["duplicate_cos"]}), key_line(page, key))
    return item("duplicates", key, html('<div class="row">{}{}{}</div>', copy, kept, side), decisions)


def merge_key(page: PageData, r: dict[str, Any]) -> str:
    """A merge item's key: the first central image of its ``label``."""
    return str((page.picks.central.get(r["label"]) or [""])[0])


def row_key(page: PageData, r: dict[str, Any]) -> str:
    """An item's sample key: the row's ``key``."""
    return str(r["key"])


def merge_item(page: PageData, r: dict[str, Any], decisions: tuple[str, ...]) -> Markup:
    """Central images of both labels; ``data-key`` is the first central image of ``data-label``."""
    a, b = r["label"], r["other_label"]
    rep = merge_key(page, r)
    strips = (strip(page, a, html("{} ({} images)", label_text(page, a), num(r["n"])), "medium")
              + strip(page, b, html("{} ({} images)", label_text(page, b), num(r["other_n"])), "medium"))
    body = html('<div class="strips wide">{}</div>{}', strips,
                metrics({"nearest_cos": r["nearest_cos"], "neighbour_mix": r["neighbour_mix"]}))
    return item("merges", rep, body, decisions, html(' data-label="{}" data-other-label="{}"', a, b))


def pair_card(page: PageData, r: dict[str, Any]) -> Markup:
    """Two images side by side with their cosine (not reviewable)."""
    a = figure(page, r["key_a"], r["label_a"], label_text(page, r["label_a"]))
    b = figure(page, r["key_b"], r["label_b"], label_text(page, r["label_b"]))
    return html('<article class="card pair"><div class="row two">{}{}</div>{}</article>', a, b,
                metrics({"cos": r["cos"]}))


def quality_item(page: PageData, r: dict[str, Any], decisions: tuple[str, ...]) -> Markup:
    """A low-quality image with its scores and bins."""
    key = r["key"]
    scores = metrics({"quality_cr": r["quality_cr"], "quality_sdd": r["quality_sdd"],
                      "difficulty": r["difficulty"], "pose": r["pose_bin"], "resolution": r["resolution_bin"]})
    body = html('<div class="row">{}{}</div>{}', figure(page, key, r["label"], label_text(page, r["label"])), scores,
                key_line(page, key))
    return item("quality", key, body, decisions)


def eval_figure(page: PageData, e: dict[str, Any]) -> Markup:
    """An evaluation image (``PageData.images``; a placeholder saying why when there is none), its cosine
    below it, its set, key and identity on hover."""
    image_id = ov.eval_id(e["eval_set"], e["eval_key"])
    tip = DOT.join([e["eval_set"], e["eval_key"], eval_who(e), f"cos {num(e['cos'])}"])
    why = page.images.get(image_id, "no image")
    img = (html('<div class="thumb missing" title="{}: {}">{}</div>', tip, why, why) if why else
           html('<img class="thumb" src="{}" alt="{}" title="{}" loading="lazy">', local_src(thumb_name(image_id)),
                e["eval_key"], tip))
    return html('<figure class="eval">{}<figcaption>cos {}</figcaption></figure>', img, num(e["cos"]))


def eval_who(e: dict[str, Any]) -> str:
    """``identity NAME``, or ``image KEY`` for a set without identities."""
    return f"identity {e['eval_identity']}" if e["eval_identity"] is not None else f"image {e['eval_key']}"


def card_key(page: PageData, r: dict[str, Any]) -> str:
    """An overlap item's key: the training image its decision is about (``fr_data.review.overlap``)."""
    return str(r["card_key"])


def overlap_item(page: PageData, r: dict[str, Any], decisions: tuple[str, ...]) -> Markup:
    """Evaluation images (set and identity named above them, cosine below) over the central images of the
    training class they match (identity) or the training image they duplicate (image); the largest cosine
    and how many evaluation images matched."""
    label, match, evals = r["label"], r["match"], r["evals"]
    names = list(dict.fromkeys(f"{e['eval_set']}{DOT}{eval_who(e)}" for e in evals))
    more = r["eval_images"] - len(evals)
    caption = html("evaluation: {}{}", "; ".join(names), f" (+{more} more)" if more > 0 else "")
    evaluation = html('<div class="strip"><div class="strip-label">{}</div><div class="imgs medium">{}</div>'
                      '</div>', caption, join(eval_figure(page, e) for e in evals))
    if match == "image":
        train = html('<div class="strip"><div class="strip-label">{}</div><div class="imgs medium">{}</div></div>',
                     f"training image{DOT}{label_text(page, label)}", image(page, r["train_key"], label))
        kind = "same bytes" if r["same_bytes"] else "image leak"
    else:
        train = strip(page, label, html("training {}: central images", label_text(page, label)), "medium")
        kind = "identity"
    badge = html('<span class="badge {}">{}</span>', match, kind)
    facts = metrics({"max_cos": r["max_cos"], "eval_images": r["eval_images"], "eval_sets": r["eval_sets"]})
    body = html('<div class="strips">{}{}</div><div class="row">{}{}</div>{}', evaluation, train, badge, facts,
                key_line(page, card_key(page, r)))
    return item("overlap", card_key(page, r), body, decisions,
                html(' data-match="{}" data-train-label="{}"', match, label))


# --------------------------------------------------------------------------------------------- sections
def section(sid: str, title: str, body: Markup) -> Markup:
    """A section with its contract id and heading."""
    return html('<section id="{}"><h2>{}</h2>{}</section>', sid, title, body)


def listing_intro(shown: int, total: int, what: str, ranking: str) -> Markup:
    """'Showing n of m ...' or, for an empty list, that nothing was flagged."""
    if total == 0:
        return html('<p class="empty">Nothing was flagged: no {} in this run.</p>', what)
    return html('<p class="intro">Showing <b>{:,}</b> of <b>{:,}</b> {}, {}.</p>', shown, total, what, ranking)


def grid(cards: list[Markup], cls: str = "grid") -> Markup:
    return html('<div class="{}">{}</div>', cls, join(cards)) if cards else NOTHING


def _value(v: Any) -> Any:
    """A metric as JSON (NaN and non-numbers: null)."""
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) else None


def facets(page: PageData, key: str, r: dict[str, Any]) -> list[str]:
    """The bins an item can be filtered by: its attributes (group, pose, ...) and the row's ``*_bin`` values."""
    values = [f"{k}={v}" for k, v in page.attributes.get(key, {}).items() if v is not None]
    values += [f"{c}={v}" for c, v in r.items() if c.endswith("_bin") and v is not None]
    return list(dict.fromkeys(values))


def entry(card: Markup, key: str, labels: list[Any], values: list[Any], bins: list[str],
          path: str | None = None) -> dict[str, Any]:
    """One item of a lazy list as data: its HTML, key, labels, metric values (in the list's order), bins
    and, when the shards name it, the key's file (``p``: ``page.js`` writes it into review.csv with the
    item's decision)."""
    out = {"h": str(card), "k": key, "l": [str(x) for x in labels], "m": [_value(v) for v in values], "f": bins}
    if path:
        out["p"] = path
    return out


def filter_bar(name: str, metric_names: tuple[str, ...]) -> Markup:
    """A list's filters (decided, a metric range, label, bin) and sort; ``page.js`` fills the bins."""
    metric = join(html('<option value="{}">{}</option>', i, m) for i, m in enumerate(metric_names))
    sort = join(html('<option value="{}:1">{} \u2191</option><option value="{}:-1">{} \u2193</option>', i, m, i, m)
                for i, m in enumerate(metric_names))
    return html(
        '<div class="filters" data-for="{}"><select data-filter="show" aria-label="decided">'
        '<option value="">all</option><option value="undecided">undecided</option>'
        '<option value="decided">decided</option></select>'
        '<select data-filter="metric" aria-label="metric"><option value="">metric</option>{}</select>'
        '<input data-filter="min" type="number" step="any" placeholder="min" aria-label="minimum">'
        '<input data-filter="max" type="number" step="any" placeholder="max" aria-label="maximum">'
        '<input data-filter="label" type="text" placeholder="label" aria-label="label">'
        '<select data-filter="bin" aria-label="bin"><option value="">any bin</option></select>'
        '<select data-filter="sort" aria-label="sort"><option value="">ranked</option>{}</select>'
        '<span class="shown"></span></div>', name, metric, sort)


#: Items per data block of item HTML: the page parses a block only when it renders one of its items.
HTML_PAGE = 500


def lazy_list(name: str, entries: list[dict[str, Any]], cls: str, metric_names: tuple[str, ...],
              decides: str = "") -> Markup:
    """A list ``page.js`` renders near the viewport: its filter bar, an empty ``.lazy`` container, the
    items' keys, labels, metrics, bins and files as one data block (``list:NAME``: what filters and sorts read) and
    their HTML in blocks of ``HTML_PAGE`` (``html:NAME:P``). ``decides``: what its items' decisions are keyed
    by (``sample``: section and key, ``pair``: the label pair; empty: not reviewable)."""
    if not entries:
        return NOTHING
    index = [{k: v for k, v in e.items() if k != "h"} for e in entries]
    pages = join(data_block(f"html:{name}:{p}", [e["h"] for e in entries[start:start + HTML_PAGE]])
                 for p, start in enumerate(range(0, len(entries), HTML_PAGE)))
    return (filter_bar(name, metric_names)
            + html('<div class="lazy" data-list="{}" data-grid="{}" data-decides="{}"></div>', name, cls, decides)
            + data_block("list:" + name, index) + pages)


def chart(page: PageData, name: str, alt: str) -> Markup:
    """A chart image, or a note when there was no data to draw it."""
    path = page.figures.get(name)
    if path is None:
        return html('<p class="empty">No data for the chart "{}".</p>', alt)
    return html('<figure class="chart"><img src="{}" alt="{}"></figure>', local_src(path), alt)


@dataclass(frozen=True)
class Listing:
    """A section body that is one ranked list of reviewable items."""

    query: str  # name of the section's query (a key of Picks.rows and Picks.totals)
    render: Callable[[PageData, dict[str, Any], tuple[str, ...]], Markup]  # (page, row, decisions) -> item
    what: str
    ranking: str  # text, or constant HTML as Markup
    grid: str = "grid"
    metrics: tuple[str, ...] = ()  # row columns shown on the items: filter and sort by them
    labels: tuple[str, ...] = ("label",)  # row columns the label filter matches
    key: Callable[[PageData, dict[str, Any]], str] = row_key  # (page, row) -> the item's sample key

    def entries(self, page: PageData, decisions: tuple[str, ...]) -> list[dict[str, Any]]:
        """The section's items as lazy-list data."""
        return [entry(self.render(page, r, decisions), key, [r[c] for c in self.labels], [r[m] for m in self.metrics],
                      facets(page, key, r), page.origins.paths.get(key))
                for r in page.picks.of(self.query) for key in (self.key(page, r),)]

    def __call__(self, page: PageData, decisions: tuple[str, ...]) -> Markup:
        rows = page.picks.of(self.query)
        intro = listing_intro(len(rows), page.picks.totals[self.query], self.what, self.ranking)
        decides = "pair" if any(d.startswith("merge") for d in decisions) else "sample" if decisions else ""
        return intro + lazy_list(self.query, self.entries(page, decisions), self.grid, self.metrics, decides)


def hard_pairs_body(page: PageData, decisions: tuple[str, ...]) -> Markup:
    p = page.picks
    if "pairs" not in page.inputs.get("files", ()):
        return Markup('<p class="empty">This run has no pairs.parquet.</p>')
    pos, neg = p.of("hard_pos"), p.of("hard_neg")
    pos_intro = listing_intro(len(pos), p.totals["hard_pos"], "hard positive pairs", "same label, lowest cosine first")
    neg_intro = listing_intro(len(neg), p.totals["hard_neg"], "hard negative pairs",
                              "different labels, highest cosine first")
    return html("<h3>Hardest positive pairs</h3>{}{}<h3>Hardest negative pairs</h3>{}{}",
                pos_intro, PAIR_LISTINGS[0](page), neg_intro, PAIR_LISTINGS[1](page))


@dataclass(frozen=True)
class PairListing:
    """A lazy list of pair cards (not reviewable)."""

    query: str

    def __call__(self, page: PageData) -> Markup:
        rows = page.picks.of(self.query)
        entries = [entry(pair_card(page, r), str(r["key_a"]), [r["label_a"], r["label_b"]], [r["cos"]], [])
                   for r in rows]
        return lazy_list(self.query, entries, "grid pairs", ("cos",))


PAIR_LISTINGS = (PairListing("hard_pos"), PairListing("hard_neg"))


QUALITY_LISTING = Listing("quality", quality_item, "scored images",
                          "lowest CR-FIQA quality first (suspects are in their own section)", "grid small",
                          ("quality_cr", "quality_sdd", "difficulty"))


def quality_body(page: PageData, decisions: tuple[str, ...]) -> Markup:
    charts = join([chart(page, "quality", "Image quality of all samples"),
                   chart(page, "difficulty", "Difficulty of all samples, by split"),
                   chart(page, "difficulty_bins", "Mean difficulty by pose and resolution bin"),
                   chart(page, "group_fpr", "False positive rate per group")])
    return html('<div class="charts">{}</div><h3>Lowest-quality images</h3>{}', charts,
                QUALITY_LISTING(page, decisions))


DISTRIBUTIONS = Markup(
    '<p class="intro">The DDL view of the data: per split, each sample\'s cosine to its own class centre '
    '(positive) and to the nearest other class centre (negative); the more the two overlap, the '
    'harder the split. Below, the cosines of the mined teacher and student pairs.</p>')


def distributions_body(page: PageData, decisions: tuple[str, ...]) -> Markup:
    return html('{}<div class="charts">{}{}</div>', DISTRIBUTIONS,
                chart(page, "similarity", "Positive and negative similarities per split"),
                chart(page, "pairs", "Cosine of the mined pairs"))


def missing_section(page: PageData) -> Markup:
    """Keys the shards do not hold and images that could not be decoded (absent when there are none)."""
    rows = [(k, "not found in the shards") for k in page.missing] + sorted(page.failed.items())
    if not rows:
        return NOTHING
    items = join(html("<li><code>{}</code> \u2013 {}</li>", k, why) for k, why in rows)
    return html('<section id="missing"><h2>Missing images</h2><p class="intro">{:,} shown sample(s) have no '
                'image: they appear as grey placeholders.</p><ul class="missing-list">{}</ul></section>',
                len(rows), items)


# --------------------------------------------------------------------------------------------- overview
def table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> Markup:
    """A table of cells (each escaped unless Markup)."""
    head = join(html("<th>{}</th>", h) for h in header)
    body = join(html("<tr>{}</tr>", join(html("<td>{}</td>", c) for c in row)) for row in rows)
    return html('<table class="data"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)


def review_link(sid: str) -> Markup:
    return html('<a href="#{}">review</a>', sid)


def count_cards(page: PageData) -> Markup:
    t = page.picks.totals
    splits = DOT.join(f"{k} {v:,}" for k, v in page.splits.items()) or "\u2013"
    cards = [("samples", f"{t['samples']:,}", f"{t['valid_vectors']:,} with a valid vector"),
             ("classes", f"{t['classes']:,}", "labels"),
             ("suspected mislabels", f"{t['suspects']:,}", review_link("suspects")),
             ("duplicates", f"{t['duplicates']:,}",
              html("{:,} cross-class{}{}", t["cross_class_duplicates"], DOT, review_link("duplicates"))),
             ("merge candidates", f"{t['merges']:,} pairs",
              html("{:,} classes{}{}", t["merge_candidate_classes"], DOT, review_link("merges"))),
             ("splits", "", splits)]
    return html('<div class="counts">{}</div>', join(
        html('<div class="count"><div class="what">{}</div><div class="n">{}</div><div class="sub">{}</div></div>',
             w, n, s) for w, n, s in cards))


def section_counts(sec: Section, p: Picks) -> tuple[Any, Any]:
    """In the run and shown, for the overview's section table (several queries: "a / b"; none: charts)."""
    if not sec.queries:
        return "charts", "charts"
    if len(sec.queries) == 1:
        return p.totals[sec.queries[0].name], len(p.of(sec.queries[0].name))
    return (" / ".join(f"{p.totals[q.name]:,}" for q in sec.queries),
            " / ".join(f"{len(p.of(q.name)):,}" for q in sec.queries))


def section_table(page: PageData) -> Markup:
    rows = [(sec.id, sec.summary, *section_counts(sec, page.picks)) for sec in shown(page) if sec.summary]
    return table([(html('<a href="#{}">{}</a>', sid, name), num(total), num(shown))
                  for sid, name, total, shown in rows], ("section", "in the run", "shown"))


def code(value: Any) -> Markup:
    return html("<code>{}</code>", value)


def titled_table(title: str, rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> Markup:
    return html("<div><h3>{}</h3>{}</div>", title, table(rows, header))


def calibration_table(run: dict[str, Any]) -> Markup | None:
    """How each threshold was obtained (``run.json: calibration``) and what the pixel check of duplicate
    candidates decided (``duplicates_pixel_check``); None when the run has neither."""
    cal = run.get("calibration") or {}
    rows = [(key, num(c.get("value"), 4), c.get("method") or "\u2013", c.get("statistic") or "\u2013",
             num(c.get("sample_size")))
            for key, c in cal.items() if isinstance(c, dict)] if isinstance(cal, dict) else []
    check = run.get("duplicates_pixel_check")
    if isinstance(check, dict) and "pixel_min" in check:
        rows.append(("duplicates.pixel_min", num(check.get("pixel_min"), 4), "pixel check",
                     (f"{num(check.get('confirmed'))} of {num(check.get('candidates'))} candidate pairs "
                      f"(cosine >= {num(check.get('candidate_cos_floor'), 4)}) confirmed"),
                     num(check.get("candidates"))))
    elif isinstance(check, dict) and check.get("skipped"):
        rows.append(("duplicates.pixel_min", "\u2013", "pixel check skipped", str(check["skipped"]), "\u2013"))
    if not rows:
        return None
    return titled_table("Calibrated thresholds", rows, ("threshold", "value", "method", "from", "n"))


def run_tables(page: PageData) -> Markup:
    """Inputs, thresholds, stage times and the mining config (any ``run.json`` values, shown as text)."""
    run = page.run
    inputs = [(k, code(v)) for k, v in page.inputs.items() if k != "files" and v]
    if run.get("model"):
        inputs.append(("model", code(json.dumps(run["model"], default=str))))
    blocks = [titled_table("Inputs", inputs, ("input", "value"))]
    thresholds = run.get("thresholds") or {}
    if isinstance(thresholds, dict) and thresholds:
        blocks.append(titled_table("Thresholds", [(k, num(v, 4)) for k, v in thresholds.items()],
                                   ("threshold", "value")))
    calibrated = calibration_table(run)
    if calibrated is not None:
        blocks.append(calibrated)
    bins = run.get("bins") or {}
    if isinstance(bins, dict) and (bins.get("pose_source") or bins.get("resolution_source")):
        rows = [("pose bins", bins.get("pose_source") or "\u2013"),
                ("resolution bins", bins.get("resolution_source") or "\u2013")]
        blocks.append(titled_table("Bins from", rows, ("bins", "source")))
    timings = run.get("timings") or {}
    if isinstance(timings, dict) and timings:
        rows = [(name, *((num(s.get("wall_s"), 2), num(s.get("peak_rss_mb"), 0)) if isinstance(s, dict)
                         else (num(s, 2), num(None))))
                for name, s in timings.items()]
        blocks.append(titled_table("Mining stage times", rows, ("stage", "wall time (s)", "peak RSS (MB)")))
    out = html('<div class="tables">{}</div>', join(blocks))
    if "calibration" in page.figures:
        out += chart(page, "calibration", "the distributions the thresholds were calibrated from")
    if run.get("config"):
        text = yaml.safe_dump(run["config"], sort_keys=False, default_flow_style=None, allow_unicode=True)
        out += html("<details><summary>Mining config</summary><pre>{}</pre></details>", text)
    return out


KEYS_HELP = Markup(
    '<kbd>j</kbd>/<kbd>k</kbd> next/previous item, <kbd>n</kbd>/<kbd>p</kbd> next/previous section, '
    '<kbd>a</kbd> keep, <kbd>d</kbd> drop, <kbd>r</kbd> relabel, <kbd>m</kbd> merge, <kbd>s</kbd> keep apart, '
    '<kbd>u</kbd> undo, <kbd>z</kbd> zoom, <kbd>Esc</kbd> close, <kbd>?</kbd> this help')
HOW_TO = html(
    '<div class="howto"><b>Reviewing.</b> Decide items with their buttons (click again to undo) or '
    'with keys: {}. Each section\'s decision is its own. Click an image to zoom it with more images of its '
    'label. Decisions stay in this browser for this data set (across reloads and re-mines); '
    '<b>Export review.csv</b> saves them for training (<code>data.selection.review</code>), for '
    '<code>hardmine query</code> (the <code>review</code> view, when the file is in the run folder) and for '
    'another curator (<b>Import</b>).</div>', KEYS_HELP)
NOTHING_FLAGGED = Markup(
    '<p class="empty" id="nothing-flagged">Nothing was flagged in this run: no suspected mislabels, no '
    'duplicates and no merge candidates.</p>')


def overview_body(page: PageData, decisions: tuple[str, ...]) -> Markup:
    t = page.picks.totals
    nothing = NOTHING_FLAGGED if t["suspects"] + t["duplicates"] + t["merges"] == 0 else NOTHING
    notes: list[Any] = list(page.notes)
    if page.missing or page.failed:
        notes.append(html('{:,} shown sample(s) have no image: see <a href="#missing">missing images</a>',
                          len(page.missing) + len(page.failed)))
    note_list = html('<ul class="notes">{}</ul>', join(html("<li>{}</li>", n) for n in notes)) if notes else ""
    return join([nothing, count_cards(page), note_list, HOW_TO, section_table(page), run_tables(page)])


# ------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Section:
    """One section of the page, in page order: everything the page needs to show it.

    Attributes:
        id: the element id (a contract of the browser tests and of ``#id`` links).
        title: its heading and navigation link.
        body: (page, decisions) -> the section's content under its heading.
        queries: the ranked picks that feed it (run by ``fr_data.review.select.select``).
        decisions: the decisions its items take, ``value`` or ``value:button`` (a ``BUTTONS`` name; ``page.js``
            handles any ``data-decision`` control; a ``merge`` item carries ``data-label`` /
            ``data-other-label``, a ``relabel`` item ``data-relabel``).
        summary: its row in the overview's table of sections (None: no row).
        pill: the navigation link shows the full count of its first query.
        attach: the folder beside the run it reads (``hardmine report --OPTION DIR``); the section is left
            out of the page when it is not given.
    """

    id: str
    title: str
    body: Callable[[PageData, tuple[str, ...]], Markup]
    queries: tuple[Query, ...] = ()
    decisions: tuple[str, ...] = ()
    summary: str | None = None
    pill: bool = False
    attach: Attachment | None = None


PAIR_KEYS = (("key_a", "label_a"), ("key_b", "label_b"))

SECTIONS: tuple[Section, ...] = (
    Section("overview", "Overview", overview_body),
    Section("suspects", "Suspected mislabels",
            Listing("suspects", suspect_item, "suspected mislabels",
                    "ranked by margin (most negative first: closest to another identity)", "grid",
                    ("center_cos", "margin", "knn_agreement"), ("label", "suspected_label")),
            (Query("suspects", sq.SUSPECTS_SQL, sq.SUSPECTS_COUNT, labels=("label", "suspected_label")),),
            ("keep", "drop", "relabel"), "Suspected mislabels", pill=True),
    Section("duplicates", "Duplicates",
            Listing("duplicates", duplicate_item, "near-duplicates",
                    Markup("cross-class copies first, then by cosine; <i>drop</i> removes the copy, "
                           "<i>keep</i> keeps it even with <code>drop_duplicates</code>"), "grid",
                    ("duplicate_cos",), ("label", "twin_label")),
            (Query("duplicates", sq.DUPLICATES_SQL, sq.DUPLICATES_COUNT,
                   keys=(("key", "label"), ("duplicate_of", "twin_label"))),),
            ("keep", "drop"), "Duplicates", pill=True),
    Section("merges", "Merge candidates",
            Listing("merges", merge_item, "merge candidate label pairs",
                    Markup("ranked by centre-to-centre cosine; <i>merge</i>: one person under two labels, "
                           "<i>keep apart</i>: two people, never merge"), "grid wide",
                    ("nearest_cos", "neighbour_mix"), ("label", "other_label"), merge_key),
            (Query("merges", sq.MERGES_SQL, sq.MERGES_COUNT, "classes", keys=(), labels=("label", "other_label")),),
            ("merge", "keep:keep-apart"), "Merge candidates (label pairs)", pill=True),
    Section("hard-pairs", "Hard pairs", hard_pairs_body,
            (Query("hard_pos", sq.HARD_PAIRS_SQL, sq.HARD_PAIRS_COUNT, "pairs", (("kind", "hard_pos"),), PAIR_KEYS),
             Query("hard_neg", sq.HARD_PAIRS_SQL, sq.HARD_PAIRS_COUNT, "pairs", (("kind", "hard_neg"),), PAIR_KEYS)),
            (), "Hard positive / negative pairs"),
    Section("quality", "Quality", quality_body,
            (Query("quality", sq.LOW_QUALITY_SQL, sq.LOW_QUALITY_COUNT),),
            ("keep", "drop"), "Lowest-quality images and quality charts"),
    Section("overlap", "Overlap",
            Listing("overlap", overlap_item, "training classes and images that overlap an evaluation set",
                    Markup("image leaks first, then by cosine; <i>drop</i>: a true match (excluded from training "
                           "with <code>exclude_overlap</code>), <i>keep</i>: a false match, train with it"),
                    "grid", ("max_cos", "eval_images"), ("label",), card_key),
            (ov.QUERY,), ("keep", "drop"), "Overlap with evaluation sets", pill=True, attach=ov.ATTACH),
    Section("distributions", "Distributions", distributions_body, summary="Similarity distributions per split"),
)


def shown(page: PageData) -> tuple[Section, ...]:
    """The sections on the page: all but those whose attachment was not given."""
    return tuple(sec for sec in SECTIONS if sec.attach is None or page.inputs.get(sec.attach.option))


def attachments() -> tuple[Attachment, ...]:
    """The folders beside the run that sections read (``hardmine report`` options), in page order."""
    return tuple(sec.attach for sec in SECTIONS if sec.attach is not None)


def queries(attached: Iterable[str] = ()) -> tuple[Query, ...]:
    """The queries of the sections on the page, in page order (what ``select.select`` runs for it):
    every section's but those whose attachment's option is not in ``attached``."""
    given = set(attached)
    return tuple(q for sec in SECTIONS if sec.attach is None or sec.attach.option in given for q in sec.queries)


# --------------------------------------------------------------------------------------------- document
def _asset(name: str) -> str:
    return resources.files("fr_data.review").joinpath(name).read_text(encoding="utf-8")


def header(page: PageData) -> Markup:
    t = page.picks.totals
    links = join(html('<a href="#{}">{}{}</a>', sec.id, sec.title,
                      html(' <span class="pill">{:,}</span>', t[sec.queries[0].name]) if sec.pill else NOTHING)
                 for sec in shown(page))
    return html('<header id="top"><div class="brand">hardmine review <span class="run">{}</span></div>'
                '<nav>{}</nav>{}</header>', page.title, links, TOOLS)


TOOLS = Markup(
    '<div class="tools"><span id="review-status">0 decided</span>'
    '<label class="toggle"><input type="checkbox" id="hide-decided"> hide decided</label>'
    '<button type="button" id="export">Export review.csv</button>'
    '<button type="button" id="import">Import</button>'
    '<input type="file" id="import-file" accept=".csv,text/csv" hidden>'
    '<button type="button" id="clear" class="quiet">Clear</button>'
    '<button type="button" id="help-button" class="quiet" aria-label="keys">?</button></div>'
    '<div id="import-status" hidden></div>'
    '<div id="storage-warning" hidden>This browser does not keep decisions for pages opened from '
    'disk: export review.csv before closing the page.</div>')
OVERLAYS = html(
    '<div id="zoom" class="overlay" hidden><div class="box" role="dialog" aria-label="zoom">'
    '<button type="button" class="close" data-close="zoom">close</button><img id="zoom-img" alt="">'
    '<div id="zoom-caption"></div><div id="zoom-more"></div></div></div>'
    '<div id="help" class="overlay" hidden><div class="box" role="dialog" aria-label="keys">'
    '<button type="button" class="close" data-close="help">close</button><h3>Keys</h3><p>{}</p></div></div>',
    KEYS_HELP)


def central_images(page: PageData) -> dict[str, list[list[str]]]:
    """Label -> [thumbnail path, key, why there is none, tooltip] of its central images (the strips and the
    zoom's "more"): the path is empty and the reason set for an image without a thumbnail."""
    def one(key: str, label: Any) -> list[str]:
        if key in page.failed or key in page.missing:
            return ["", key, page.failed.get(key, "not found in the shards"), tooltip(page, key, label)]
        return [local_src(thumb_name(key)), key, "", tooltip(page, key, label)]
    return {str(label): [one(k, label) for k in keys[:CENTRAL]] for label, keys in page.picks.central.items()}


def content_security_policy(style: str, script: str) -> str:
    """The page's CSP: nothing from the network, images from the report folder, only the page's own inline
    style and script (by sha256: no inline handler, no ``javascript:`` URL, no injected ``<script>``), no
    plugin, no ``<base>``, no form target. (``frame-ancestors`` is ignored in a ``<meta>`` policy and
    ``navigate-to`` is not implemented by browsers, so neither is set.)"""
    return (f"default-src 'none'; img-src 'self' file:; style-src {csp_hash(style)}; "
            f"script-src {csp_hash(script)}; object-src 'none'; base-uri 'none'; form-action 'none'")


def render(page: PageData) -> str:
    """The whole page (UTF-8 HTML text)."""
    style, script = _asset("page.css"), _asset("page.js")
    main = join([*(section(sec.id, sec.title, sec.body(page, sec.decisions)) for sec in shown(page)),
                 missing_section(page)])
    strips = {str(label): str(strip_images(page, label)) for label in page.picks.central}
    data = (data_block("central", central_images(page)) + data_block("strips", strips)
            + data_block("buttons", BUTTONS))
    if page.prefill is not None:
        data += data_block("prefill", {"csv": page.prefill})
    return html('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                '<meta http-equiv="Content-Security-Policy" content="{}">'
                '<meta name="referrer" content="no-referrer">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                '<title>hardmine review \u2013 {}</title>{}</head>'
                '<body data-run="{}" data-data="{}">{}<main>{}</main>{}{}{}</body></html>\n',
                content_security_policy(style, script), page.title, inline("style", style),
                page.run_id, page.data_id or page.run_id, header(page), main, OVERLAYS, data,
                inline("script", script))
