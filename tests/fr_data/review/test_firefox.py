"""The review page in Firefox (Debian's firefox-esr, headless, driven over Marionette; Playwright cannot
drive a stock Firefox): images load, every referenced URL stays on file://, counts, a decision survives a
reload, and the export downloads the same review.csv as in Chromium."""

from __future__ import annotations

import pytest

from fr_data.folders.review_file import read_review
from tests.fr_data.review.browsers import browser_or_skip, poll_until, run_counts
from tests.fr_data.review.marionette import Firefox

COUNTS = "return ['suspects', 'duplicates', 'merges'].map(s => window.hardmineReview.shown(s))"
IN_VIEW = ("return Array.from(document.images).filter(i => { const r = i.getBoundingClientRect(); "
           "return r.width > 0 && r.bottom > 0 && r.top < innerHeight; }).map(i => i.complete && i.naturalWidth > 0)")
FIRST = "return document.querySelector(arguments[0]).getAttribute(arguments[1])"


@pytest.fixture()
def firefox(tmp_path):
    with Firefox(browser_or_skip("firefox-esr"), tmp_path / "profile", tmp_path / "downloads") as ff:
        yield ff


def wait_for(path, seconds: float = 20.0):
    """``path`` once the download has written it (non-empty)."""
    poll_until(lambda: path.is_file() and path.stat().st_size > 0, f"a download at {path}", seconds, 0.1)
    return path


def poll(firefox, script: str, *args, seconds: float = 20.0):
    """The script's result once it is truthy (and, for a list, all true)."""
    return poll_until(lambda: firefox.script(script, *args), script, seconds, interval=0.1)


def show(firefox, sid: str) -> list:
    """Scroll section ``sid`` into view; wait for its items (rendered near the viewport) and the images in view."""
    firefox.script("document.getElementById(arguments[0]).scrollIntoView(); return true", sid)
    poll(firefox, "return Array.from(document.querySelectorAll('#' + arguments[0] + ' .lazy'))"
                  ".every(l => l.querySelector('.item, .card'))", sid)
    return poll(firefox, IN_VIEW)


def test_review_in_firefox(firefox, tiny_demo, tmp_path):
    out = tiny_demo[0]
    url = (out / "report" / "index.html").as_uri()
    firefox.navigate(url)
    expected = run_counts(out / "mined")
    assert firefox.script(COUNTS) == [min(200, expected[k]) for k in ("suspects", "duplicates", "merges")]
    images = [ok for sid in ("suspects", "duplicates", "merges", "quality") for ok in show(firefox, sid)]
    assert len(images) > 10 and all(images)
    urls = firefox.script("return Array.from(document.querySelectorAll('[src],[href]')).map(e => e.src || e.href)")
    assert urls and all(u.startswith("file://") for u in urls)

    show(firefox, "duplicates")
    key = firefox.script(FIRST, "#duplicates .item[data-key]", "data-key")
    firefox.click("#duplicates .item[data-key] [data-decision=drop]")
    merge = "#merges .item[data-key]"
    show(firefox, "merges")
    labels = tuple(int(firefox.script(FIRST, merge, a)) for a in ("data-label", "data-other-label"))
    firefox.click(f"{merge} [data-decision=merge]")
    firefox.navigate(url)
    show(firefox, "duplicates")
    assert firefox.script(FIRST, f'#duplicates .item[data-key="{key}"]', "data-decided") == "drop"
    show(firefox, "merges")
    assert firefox.script(FIRST, merge, "data-decided") == "merge"
    assert firefox.script("return document.getElementById('storage-warning').hidden") is True

    firefox.click("#export")
    csv = wait_for(tmp_path / "downloads" / "review.csv")
    review = read_review(csv)
    assert review.keys("drop") == [key] and review.pairs("merge") == [tuple(sorted(labels))]
    assert csv.read_bytes().decode() == firefox.script("return window.hardmineReview.csv()")
