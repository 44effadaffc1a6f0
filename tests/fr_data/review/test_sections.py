"""The review page's sections are a registry (``page.SECTIONS``): a new section is one entry, and every
section's items take exactly the decisions its entry declares."""

from __future__ import annotations

import re

import pytest

from fr_data.review import build, page, select
from fr_data.review.page import Listing, PageData, Section, metrics, render
from fr_data.review.select import Query
from tests.fr_data.review.builders import expand_lists, make_review_run


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_review_run(tmp_path_factory.mktemp("sections"))


def _section_html(text: str, sid: str) -> str:
    return re.search(rf'<section id="{sid}">(.*?)</section>', expand_lists(text), re.DOTALL).group(1)


def _picked(data, sections) -> PageData:
    t = select.open_tables(data.run)
    try:
        picks = select.select(t, 3, tuple(q for sec in sections for q in sec.queries))
    finally:
        t.con.close()
    return PageData("run", "RUN", picks, inputs={"files": ["samples", "classes", "pairs"]})


def test_every_section_takes_the_decisions_it_declares(data):
    text = render(_picked(data, page.SECTIONS))
    for sec in page.SECTIONS:
        if sec.attach is not None:  # reads a folder beside the run (overlap: test_chromium_overlap.py)
            assert f'<section id="{sec.id}">' not in text
            continue
        found = re.findall(r'data-decisions="([^"]+)"', _section_html(text, sec.id))
        assert set(found) <= {" ".join(sec.decisions)}, sec.id
        assert (not sec.decisions) or found, sec.id  # the fixture run flags something in each


def isolated_item(p: PageData, r: dict, decisions: tuple[str, ...]) -> page.Markup:
    body = page.html("<div>{}{}</div>", page.figure(p, r["key"], r["label"], "isolated"), metrics({"nn": r["nn"]}))
    return page.item("isolated", r["key"], body, decisions)


ISOLATED = Section(
    "isolated", "Isolated samples",
    Listing("isolated", isolated_item, "isolated samples", "lowest leave-one-out centre cosine first"),
    (Query("isolated", "SELECT key, label, center_cos AS nn FROM samples WHERE center_cos IS NOT NULL "
                       "ORDER BY center_cos, key LIMIT $n",
           "SELECT count(center_cos) AS n FROM samples"),),
    ("keep", "drop"), "Isolated samples", pill=True)


def test_a_new_section_is_one_entry(data, monkeypatch):
    monkeypatch.setattr(page, "SECTIONS", (*page.SECTIONS, ISOLATED))
    picked = _picked(data, page.SECTIONS)
    rows = picked.picks.of("isolated")
    assert len(rows) == 3 and rows == sorted(rows, key=lambda r: (r["nn"], r["key"]))
    text = render(picked)
    assert '<a href="#isolated">Isolated samples <span class="pill">36</span></a>' in text  # navigation
    assert '<a href="#isolated">Isolated samples</a></td><td>36</td><td>3</td>' in text  # overview table
    body = _section_html(text, "isolated")
    assert re.findall(r'data-key="([^"]+)"', body) == [r["key"] for r in rows]
    assert build.section_counts(picked.picks)["isolated"] == {"total": 36, "shown": 3}
    shown = picked.picks.keys()
    assert all(r["key"] in shown for r in rows)  # its images get thumbnails
