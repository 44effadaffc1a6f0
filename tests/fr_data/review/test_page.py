"""The page's element contracts, escaping, placeholders, the nothing-flagged notice and its safety (a page
whose every value is markup holds no element or handler from it; the CSP allows only the page's own script
and style), read back with Python's HTML parser."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from fr_data.folders.report_folder import thumb_name
from fr_data.review.markup import csp_hash
from fr_data.review.page import PageData, queries, render
from fr_data.review.provenance import Provenance
from fr_data.review.page import buttons as buttons_of
from fr_data.review.select import Picks
from tests.fr_data.review.builders import LIST_BLOCK, expand_lists
from tests.fr_data.review.hostile import COLUMN, FOLDER, PAGE_TAGS, hostile_run_info, payload

NASTY = 'k"<script>alert(1)</script>&,x'
TOTALS = {"samples": 10, "valid_vectors": 10, "suspects": 0, "duplicates": 0, "cross_class_duplicates": 0,
          "quality": 0, "classes": 3, "merge_candidate_classes": 0, "merges": 0, "hard_pos": 0, "hard_neg": 0}


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text; the items of the lazy lists (data blocks that the
    page's script renders) are parsed as the browser would parse them when they are rendered."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(expand_lists(text))

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def having(self, name: str, value: str | None = None) -> list[dict]:
        return [a for _, a in self.tags if name in a and (value is None or a[name] == value)]


def picks(central=None, **rows) -> Picks:
    return Picks(5, rows=rows, central=central or {}, totals=dict(TOTALS), queries=queries())


def flagged() -> Picks:
    p = picks(suspects=[{"key": NASTY, "label": 0, "suspected_label": 1, "center_cos": 0.1, "margin": -0.2,
                         "knn_agreement": 0.3}],
              duplicates=[{"key": "d1", "label": 0, "duplicate_of": "d0", "twin_label": 2, "duplicate_cos": 0.99,
                           "duplicate_kind": "cross_class"}],
              merges=[{"label": 1, "other_label": 2, "nearest_cos": 0.8, "neighbour_mix": 0.9, "n": 3,
                       "other_n": 4}],
              central={0: ["c0"], 1: ["c1a", "c1b"], 2: ["c2"]})
    p.totals.update(suspects=1, duplicates=1, cross_class_duplicates=1, merges=1, merge_candidate_classes=2)
    return p


def test_sections_and_reviewable_items_carry_their_contracts():
    page = Elements(render(PageData("run123", "RUN", flagged(), missing=["d0"])))
    ids = {a["id"] for a in page.having("id")}
    assert {"overview", "suspects", "duplicates", "merges", "hard-pairs", "quality", "distributions",
            "missing", "export"} <= ids
    assert page.having("data-run", "run123")
    items = [a for a in page.having("data-key") if "item" in a.get("class", "")]
    assert [a["data-key"] for a in items] == [NASTY, "d1", "c1a"]  # the merge item: first central of label 1
    merge = items[2]
    assert merge["data-label"] == "1" and merge["data-other-label"] == "2"
    decisions = [a["data-decisions"] for a in items]  # page.js makes each its buttons
    assert decisions == ["keep drop relabel", "keep drop", "merge keep:keep-apart"]
    assert items[0]["data-relabel"] == "1"  # a suspect's relabel goes to its suspected label
    buttons = re.findall(r'data-decision="(\w+)" aria-pressed="false">([^<]*)<', buttons_of(decisions[2].split()))
    assert buttons == [("merge", "Merge"), ("keep", "Keep apart")]  # labelled by what they do


def test_list_items_are_data_for_the_script_with_their_metrics_labels_and_bins():
    text = render(PageData("r", "RUN", flagged(), attributes={"d1": {"group": "A"}}))
    lists = {re.search(r'data-block="list:([^"]*)"', m.group(0)).group(1): json.loads(m.group(1))
             for m in LIST_BLOCK.finditer(text)}
    assert set(lists) == {"suspects", "duplicates", "merges"}
    assert [(e["k"], e["l"], e["m"]) for e in lists["suspects"]] == [(NASTY, ["0", "1"], [0.1, -0.2, 0.3])]
    assert lists["duplicates"][0]["f"] == ["group=A"] and lists["merges"][0]["k"] == "c1a"
    assert "<script>alert" not in text and "</script>" not in LIST_BLOCK.search(text).group(1)
    html_blocks = re.findall(r'data-block="(html:[^"]*)"', text)
    assert html_blocks == ["html:suspects:0", "html:duplicates:0", "html:merges:0"]


def test_keys_are_escaped_and_images_are_local():
    text = render(PageData("r", "RUN", flagged()))
    assert "<script>alert(1)" not in text
    page = Elements(text)
    sources = [a["src"] for a in page.having("src")]
    assert thumb_name(NASTY) in sources and all(s.startswith("img/") for s in sources)
    assert not [a for a in page.having("href") if "://" in a["href"]]
    assert not [a for a in page.having("src") if "://" in a["src"]]
    assert next(a["content"] for a in page.having("http-equiv")).startswith("default-src 'none'")


def test_missing_and_undecodable_images_are_placeholders_listed_in_missing():
    text = render(PageData("r", "RUN", flagged(), missing=["d0"], failed={"c2": "image cannot be decoded"}))
    page = Elements(text)
    sources = {a["src"] for a in page.having("src")}
    assert thumb_name("d0") not in sources and thumb_name("c2") not in sources and thumb_name("d1") in sources
    placeholders = [a for a in page.having("class") if "missing" in a["class"].split()]
    assert len(placeholders) == 2  # the twin d0 and the central image c2 (a strip page.js fills in)
    central = json.loads(re.search(r'data-block="central">(.*?)</script>', text).group(1))
    assert central["2"] == [["", "c2", "image cannot be decoded", "c2 \u00b7 label 2"]]  # a placeholder naming why
    assert [c[:3] for c in central["1"]] == [[thumb_name("c1a"), "c1a", ""], [thumb_name("c1b"), "c1b", ""]]
    text = "".join(page.text)
    assert "d0 \u2013 not found in the shards" in text and "c2 \u2013 image cannot be decoded" in text


def test_a_run_without_findings_says_nothing_was_flagged():
    page = Elements(render(PageData("r", "RUN", picks())))
    assert page.having("id", "nothing-flagged")
    assert not page.having("data-key") and not page.having("id", "missing")
    text = " ".join(page.text)
    assert "Nothing was flagged in this run" in text
    assert "no suspected mislabels in this run" in text and "no near-duplicates in this run" in text
    assert "This run has no pairs.parquet" in text


def test_a_flagged_run_has_no_nothing_flagged_notice():
    assert not Elements(render(PageData("r", "RUN", flagged()))).having("id", "nothing-flagged")


def test_attributes_show_with_the_image():
    text = render(PageData("r", "RUN", flagged(), attributes={"d1": {"yaw": "31.5", "group": "A"}}))
    assert "yaw=31.5" in text and "yaw 31.5 \u00b7 group A" in text


def test_cards_name_each_image_file_and_identity():
    origins = Provenance(paths={"d1": "0000045/003.jpg", NASTY: "0000045/001.jpg"},
                         identities={0: "0000045", 1: "0000099", 2: "2"})
    page = Elements(render(PageData("r", "RUN", flagged(), origins=origins)))
    text = "".join(page.text)
    assert "0000045/003.jpg \u00b7 d1" in text and f"0000045/001.jpg \u00b7 {NASTY}" in text  # the key lines
    assert "copy \u00b7 0000045 (label 0)" in text and "kept twin \u00b7 label 2" in text  # "2" says no more
    assert "suspected 0000099 (label 1): central images" in text and "0000099 (label 1) (3 images)" in text
    assert any(a["title"].startswith("0000045/003.jpg \u00b7 d1 \u00b7 0000045 (label 0)")
               for a in page.having("title") if a.get("alt") == "d1")
    plain = "".join(Elements(render(PageData("r", "RUN", flagged()))).text)
    assert "copy \u00b7 label 0" in plain and "0000045" not in plain  # without provenance: labels and keys


# ------------------------------------------------------------------------------------------------ safety
def hostile_page() -> PageData:
    """Every string the page shows carries markup (labels are integers in the run schemas)."""
    p = flagged()
    p.rows["suspects"][0]["key"] = payload(1)
    p.rows["duplicates"][0].update(key=payload(2), duplicate_of=payload(3), duplicate_kind=payload(4))
    p.rows["quality"] = [{"key": payload(5), "label": 0, "quality_cr": payload(6), "quality_sdd": 0.1,
                      "difficulty": None, "pose_bin": payload(7), "resolution_bin": payload(8)}]
    p.rows["hard_pos"] = [{"key_a": payload(9), "key_b": payload(10), "label_a": 0, "label_b": 0, "cos": payload(11)}]
    p.central = {0: [payload(12)], 1: [payload(13), payload(14)], 2: [payload(15)]}
    run = hostile_run_info({"thresholds": {"target_fpr": 1e-4}})
    return PageData(payload(16), FOLDER, p, missing=[payload(3)], failed={payload(15): payload(17)},
                    attributes={payload(13): {COLUMN: payload(18)}}, run=run, notes=[payload(19)],
                    inputs={payload(20): payload(21), "run": f"/data/{FOLDER}", "files": ["pairs"]},
                    splits={payload(22): 3},
                    origins=Provenance(paths={payload(2): payload(23)}, identities={1: payload(24)}))


def csp_of(text: str) -> dict[str, list[str]]:
    content = next(a["content"] for a in Elements(text).having("http-equiv", "Content-Security-Policy"))
    return {d.split()[0]: d.split()[1:] for d in content.split(";")}


def test_every_value_of_a_hostile_page_is_text():
    text = render(hostile_page())
    page = Elements(text)
    assert {tag for tag, _ in page.tags} <= PAGE_TAGS
    assert [(tag, name) for tag, a in page.tags for name in a if name.startswith("on")] == []
    assert [a.get("type") for tag, a in page.tags if tag == "script"].count(None) == 1  # data blocks aside
    assert all(a["src"].startswith("img/") for a in page.having("src"))
    assert all(a["href"].startswith("#") for a in page.having("href"))
    central = json.loads(re.search(r'data-block="central">(.*?)</script>', text).group(1))
    shown = ("".join(page.text) + " ".join(v or "" for _, a in page.tags for v in a.values())
             + " ".join(v for images in central.values() for c in images for v in c))  # page.js shows these as text
    info = hostile_page().run
    expected = [FOLDER, COLUMN, *(payload(i) for i in range(1, 25) if i not in (10, 11)), *info["thresholds"],
                *info["timings"], info["thresholds"]["duplicate_cos"]]
    assert [s for s in expected if s not in shown] == []


def test_the_html_has_no_inline_handler_and_its_csp_allows_only_its_own_script_and_style():
    text = render(PageData("r", "RUN", flagged(), missing=["d0"], failed={"c2": "bad"}))
    assert re.search(r"\son\w+\s*=", text, re.IGNORECASE) is None
    csp = csp_of(text)
    script = re.search(r"<script>(.*?)</script>", text, re.DOTALL).group(1)
    style = re.search(r"<style>(.*)</style>", text, re.DOTALL).group(1)
    assert csp["script-src"] == [csp_hash(script)] and csp["style-src"] == [csp_hash(style)]
    assert "'unsafe-inline'" not in text.split("<body")[0]
    assert csp["default-src"] == csp["object-src"] == csp["base-uri"] == csp["form-action"] == ["'none'"]
    assert csp["img-src"] == ["'self'", "file:"]
