"""The review page at size, in Chromium, by structure (timings are the benchmark's: benchmarks/bench_report.py
--page): with 2,000 items in each of three sections only what is near the viewport is in the DOM while
scrolling through it, a decision changes one item, filters and sorts agree with the data, the keys move
through sections (``j`` after a navigation link continues from that section), an image zooms with more
images of its label, and the page fits a 390 px wide screen, where a navigation link shows the section's
title below the (two-row) sticky header."""

from __future__ import annotations

import pytest

from fr_data.review.page import render
from tests.fr_data.review.browsers import open_page, show_section, wait_until
from tests.fr_data.review.builders import synthetic_page

N = 2000

#: Scrolls through the whole page in 40 steps; the most items and elements the DOM held at any step.
SCROLL_DOM = """async () => {
  let items = 0, nodes = 0;
  const height = document.documentElement.scrollHeight;
  for (let i = 0; i <= 40; i++) {
    scrollTo(0, height * i / 40);
    await new Promise(r => requestAnimationFrame(() => setTimeout(r, 30)));
    items = Math.max(items, document.querySelectorAll('.item').length);
    nodes = Math.max(nodes, document.getElementsByTagName('*').length);
  }
  return {items, nodes};
}"""

#: Clicks a decision on the first suspect and returns the items whose subtree a MutationObserver saw change.
DECIDE_ONE = """async () => {
  const changed = new Set();
  let structure = 0;
  const seen = new MutationObserver(list => list.forEach(m => {
    const item = (m.target.closest ? m.target : m.target.parentElement).closest('.item');
    if (item) { changed.add(item.getAttribute('data-key')); } else { structure += 1; }
  }));
  seen.observe(document.querySelector('main'), {subtree: true, childList: true, attributes: true, characterData: true});
  document.querySelector('#suspects .item [data-decision=drop]').click();
  await new Promise(r => setTimeout(r, 50));
  seen.disconnect();
  return {changed: Array.from(changed), structure};
}"""


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    data = synthetic_page(N)
    index = tmp_path_factory.mktemp("big") / "index.html"
    index.write_text(render(data), encoding="utf-8")
    return data, index


def test_only_items_near_the_viewport_are_in_the_dom(chromium, big):
    _, index = big
    opened = open_page(chromium, index)
    page = opened.page
    assert page.evaluate("hardmineReview.shown('suspects') + hardmineReview.shown('duplicates') + "
                         "hardmineReview.shown('quality')") == 3 * N
    most = page.evaluate(SCROLL_DOM)
    assert 0 < most["items"] <= 400 and most["nodes"] <= 15000, most  # 6,000+ items in the lists
    assert opened.errors == [] and opened.violations() == []
    opened.close()


def test_parsed_data_blocks_leave_the_dom(chromium, big):
    _, index = big
    html_blocks = index.read_text(encoding="utf-8").count('data-block="html:')
    opened = open_page(chromium, index)
    page = opened.page
    left = "() => Array.from(document.querySelectorAll('script[data-block]')).map(e => e.dataset.block)"
    remaining = page.evaluate(left)
    assert remaining and all(name.startswith("html:") for name in remaining)  # lists, strips, ... parsed
    assert "html:suspects:0" not in remaining and len(remaining) < html_blocks  # the first items' HTML too
    show_section(page, "quality")
    assert "html:quality:0" not in page.evaluate(left)
    assert opened.errors == []
    opened.close()


def test_a_decision_repaints_one_item(chromium, big):
    _, index = big
    opened = open_page(chromium, index)
    page = opened.page
    show_section(page, "suspects")
    result = page.evaluate(DECIDE_ONE)
    assert result == {"changed": ["s000000"], "structure": 0}
    assert page.inner_text("#review-status") == "1 decided (1 drop)"
    opened.close()


def test_filters_and_sort_agree_with_the_data(chromium, big):
    data, index = big
    rows = data.picks.of("suspects")
    opened = open_page(chromium, index)
    page = opened.page
    bar = "#suspects .filters"
    page.select_option(f"{bar} [data-filter=metric]", label="margin")
    page.fill(f"{bar} [data-filter=min]", "0.5")
    expected = sum(r["margin"] >= 0.5 for r in rows)
    assert page.evaluate("hardmineReview.shown('suspects')") == expected
    assert page.inner_text(f"{bar} .shown") == f"{expected} of {N} shown"
    page.fill(f"{bar} [data-filter=min]", "")
    page.select_option(f"{bar} [data-filter=sort]", label="margin \u2191")
    show_section(page, "suspects")
    first = min(rows, key=lambda r: (r["margin"], r["key"]))["key"]
    assert page.locator("#suspects .item").first.get_attribute("data-key") == first
    page.fill(f"{bar} [data-filter=label]", "7")
    assert page.evaluate("hardmineReview.shown('suspects')") == sum(7 in (r["label"], r["suspected_label"])
                                                                    for r in rows)
    page.fill(f"{bar} [data-filter=label]", "")
    page.select_option("#quality .filters [data-filter=bin]", "pose_bin=profile")
    assert page.evaluate("hardmineReview.shown('quality')") == N // 2
    page.locator("#suspects .item [data-decision=keep]").first.click()
    page.check("#hide-decided")
    assert page.evaluate("hardmineReview.shown('suspects')") == N - 1
    opened.close()


def test_keys_move_through_items_and_sections(chromium, big):
    _, index = big
    opened = open_page(chromium, index)
    page = opened.page
    focused = "() => [document.activeElement.getAttribute('data-section'), document.activeElement.getAttribute('data-key')]"
    page.keyboard.press("j")
    assert page.evaluate(focused) == ["suspects", "s000000"]
    page.click('header nav a[href="#quality"]')
    page.keyboard.press("j")
    assert page.evaluate(focused) == ["quality", "q000000"]  # continues from the linked section
    page.keyboard.press("j")
    page.keyboard.press("d")  # decides and moves on
    assert page.evaluate(focused) == ["quality", "q000002"]
    assert page.locator('#quality .item[data-key="q000001"]').get_attribute("data-decided") == "drop"
    page.keyboard.press("p")
    assert page.evaluate(focused)[0] == "merges"
    page.keyboard.press("?")
    assert page.is_visible("#help")
    page.keyboard.press("Escape")
    assert not page.is_visible("#help")
    opened.close()


def test_an_image_zooms_with_more_images_of_its_label(chromium, big):
    _, index = big
    opened = open_page(chromium, index)
    page = opened.page
    show_section(page, "suspects")
    page.locator("#suspects .item img.thumb.big").first.click()
    assert page.is_visible("#zoom")
    box = page.locator("#zoom-img").bounding_box()
    assert box["width"] >= 112 and box["height"] >= 112
    assert page.locator("#zoom-more img").count() == 4  # the central images of label 0
    page.keyboard.press("Escape")
    assert not page.is_visible("#zoom")
    assert opened.violations() == []
    opened.close()


def test_the_page_fits_a_390_px_screen(chromium, big):
    _, index = big
    opened = open_page(chromium, index, width=390, height=844)
    page = opened.page
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for sid in ("suspects", "duplicates", "merges", "quality"):
        show_section(page, sid)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, sid
    opened.close()


#: The sticky header's bottom and section ``sid``'s title top, once the section's first items are rendered.
TITLE_UNDER_HEADER = """async sid => {
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return [document.querySelector('header').getBoundingClientRect().bottom,
          document.querySelector('#' + sid + ' h2').getBoundingClientRect().top];
}"""


def test_a_navigation_link_shows_the_section_title_below_the_header_at_390_px(chromium, big):
    _, index = big
    opened = open_page(chromium, index, width=390, height=844)
    page = opened.page
    for sid in ("suspects", "duplicates", "merges", "quality"):
        page.click(f'header nav a[href="#{sid}"]')
        wait_until(page, "id => document.querySelector('#' + id + ' .lazy .item')", sid)
        header_bottom, title_top = page.evaluate(TITLE_UNDER_HEADER, sid)
        assert header_bottom > 100, header_bottom  # two rows at this width
        assert header_bottom <= title_top < 844 / 2, (sid, header_bottom, title_top)
    page.keyboard.press("j")  # the item the keyboard moves to is below the header too
    focused = page.evaluate("document.activeElement.getBoundingClientRect().top")
    assert focused >= page.evaluate("document.querySelector('header').getBoundingClientRect().bottom")
    assert opened.errors == [] and opened.violations() == []
    opened.close()
