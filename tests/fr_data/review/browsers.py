"""Where the real browsers of the review-page tests are, and when their absence may skip a test.

Chromium is driven by Playwright for Python through ``executable_path`` (Debian's ``chromium`` package,
never a Playwright browser download); Firefox (Debian's ``firefox-esr``) through its own Marionette
protocol (``marionette.py``). A missing browser skips its test, except where ``HARDMINE_CI`` is set
(``.ci/run`` installs both browsers, so there a missing one is a failure). ``run_counts`` counts a run's
flagged items with pyarrow, independently of the page builder, for both tests.

Chromium helpers for any test: ``chromium()`` launches it (skipping when absent), ``open_page(browser,
index)`` opens a page from disk in a fresh context and records every request, page error, console error
and Content-Security-Policy violation (``Opened``); ``tests/fr_data/review/conftest.py`` shares one
browser per module as the fixture ``chromium``. ``wait_until(page, js)`` waits for a condition: Playwright's
own ``wait_for_function`` builds its predicate with ``eval`` inside the page, which the page's CSP refuses
(and reports as a violation) whenever the condition is not already true at the first check.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def browser_or_skip(name: str) -> str:
    """Path of the browser executable ``name``; skips (fails under ``HARDMINE_CI``) when it is absent."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install -y {name})"
        if os.environ.get("HARDMINE_CI"):
            pytest.fail(message + " but HARDMINE_CI is set: CI must run the browser tests")
        pytest.skip(message)
    return path


def run_counts(run) -> dict[str, int]:
    """Flagged items of a mining run, counted with pyarrow (independently of the page builder)."""
    s = pq.read_table(run / "samples.parquet", columns=["suspect_mislabel", "duplicate_of"]).to_pydict()
    c = pq.read_table(run / "classes.parquet", columns=["label", "nearest_label", "merge_candidate"]).to_pylist()
    pairs = {frozenset((r["label"], r["nearest_label"])) for r in c if r["merge_candidate"]}
    return {"suspects": sum(s["suspect_mislabel"]), "duplicates": sum(k is not None for k in s["duplicate_of"]),
            "merges": len(pairs)}


#: Runs in every document before its own scripts (Playwright init scripts are not subject to the page's CSP).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push({directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample});
}, true);
"""


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's, through Playwright); skips where it is not installed."""
    from playwright.sync_api import sync_playwright

    path = browser_or_skip("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Opened:
    """A page opened by ``open_page`` and what it did (requests, with the reason of those that failed, page
    errors, console errors and warnings)."""

    context: Any
    page: Any
    requests: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def violations(self) -> list[dict]:
        """CSP violations reported in the current document (since its last load)."""
        return self.page.evaluate("window.__cspViolations")

    def close(self) -> None:
        self.context.close()


def open_page(browser, index: Path, width: int = 1400, height: int = 900) -> Opened:
    """Open ``index`` (a file) in a new context with downloads allowed, recording what it does."""
    context = browser.new_context(accept_downloads=True, viewport={"width": width, "height": height})
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    opened = Opened(context, page)
    page.on("request", lambda r: opened.requests.append(r.url))
    page.on("requestfailed", lambda r: opened.failed.update({r.url: r.failure}))
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    page.on("console", lambda m: opened.console.append(m.text) if m.type in ("error", "warning") else None)
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    return opened


def poll_until(check: Callable[[], Any], what: str, seconds: float = 30.0, interval: float = 0.05) -> Any:
    """``check()``'s value once it is truthy (a list: non-empty and all true), polled every ``interval``
    seconds; AssertionError naming ``what`` and the last value after ``seconds``. The one waiting loop of
    both browser drivers (Playwright for Chromium, Marionette for Firefox)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if (value and all(value)) if isinstance(value, list) else value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {seconds:.0f} s: {what}")
        time.sleep(interval)


def wait_until(page, js: str, arg: Any = None, timeout_s: float = 30.0) -> Any:
    """Poll ``page.evaluate(js, arg)`` (DevTools evaluation, which the page's CSP does not govern) until it
    is truthy (``poll_until``)."""
    return poll_until(lambda: page.evaluate(js, arg), js, timeout_s)


def show_section(page, sid: str) -> None:
    """Scroll section ``sid`` into view and wait until its lazy lists have rendered their first items."""
    page.evaluate("id => document.getElementById(id).scrollIntoView()", sid)
    wait_until(page, "id => Array.from(document.querySelectorAll('#' + id + ' .lazy'))"
               ".every(l => l.querySelector('.item, .card'))", sid)


def shown_counts(page, names=("suspects", "duplicates", "merges")) -> dict[str, int]:
    """Items each lazy list holds after its filters (``window.hardmineReview.shown``)."""
    return {n: page.evaluate("n => hardmineReview.shown(n)", n) for n in names}


#: Scrolls the page one viewport at a time, waiting at each stop for the images in view to finish, and
#: returns [complete, naturalWidth, src] of every image seen (images load lazily, near the viewport).
SCROLL_IMAGES = """async () => {
  const seen = new Map();
  const inView = () => Array.from(document.images).filter(i => {
    const r = i.getBoundingClientRect();
    return r.width > 0 && r.bottom > 0 && r.top < innerHeight;
  });
  for (let y = 0; ; y += innerHeight) {
    scrollTo(0, y);
    await new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)));
    for (let t = 0; t < 100 && !inView().every(i => i.complete); t++) { await new Promise(r => setTimeout(r, 20)); }
    inView().forEach(i => seen.set(i.src, [i.complete, i.naturalWidth, i.src]));
    if (y + innerHeight >= document.documentElement.scrollHeight) { break; }
  }
  scrollTo(0, 0);
  return Array.from(seen.values());
}"""


def images_seen_while_scrolling(page) -> list[list]:
    return page.evaluate(SCROLL_IMAGES)
