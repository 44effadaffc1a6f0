"""Benchmark: the review page in Chromium at size - time to interactive, per decision, per filter, memory.

    python benchmarks/bench_review_page.py [--items 1000 10000] [--work DIR] [--decisions 20]

For each N: the page of a synthetic run with N suspects, N duplicates and N low-quality images (labels of
4 images, 4 central images each, N/100 merge pairs; ``tests/fr_data/review/builders.synthetic_page``) is
rendered by ``fr_data.review.page.render`` and every thumbnail it names is a hard link to one real
112 x 112 JPEG (so images really load). Debian's Chromium (Playwright, headless, 1440 x 900) then opens it
from disk in a fresh context and the script reports:

* interactive: ``performance.now()`` when the page script finished (``hardmineReview.ready``: data parsed,
  first chunks rendered, the page answers clicks and keys), and the load event;
* decision: ``--decisions`` clicks on rendered items, each timed in the page from the click to the end
  of the layout it causes (``performance.now()`` around ``click()`` and a forced ``offsetHeight``);
* filter / hide: a metric range on the suspects, and "hide decided" over every list, timed the same way;
* memory, after the measurements: the proportional set size and private anonymous memory (``/proc``) of
  every ``--type=renderer`` process of this browser (the page's and Chromium's spare ones) and of the
  page's own renderer (the one whose private memory grew with the page: ``renderer_memory_mb``), and the
  JS heap (CDP ``Performance.getMetrics``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._machine import describe  # noqa: E402
from tests.fr_data.review.browsers import CHROMIUM_ARGS, wait_until  # noqa: E402  (the tests' launch and wait)

TIMED = """(args) => {
  const [selector, action] = args;
  const t = performance.now();
  if (action === 'click') { document.querySelector(selector).click(); }
  else { const el = document.querySelector(selector); el.value = action; el.dispatchEvent(new Event('input', {bubbles: true})); }
  document.body.offsetHeight;
  return performance.now() - t;
}"""
HIDE = """() => {
  const t = performance.now();
  const box = document.getElementById('hide-decided');
  box.checked = true;
  box.dispatchEvent(new Event('change', {bubbles: true}));
  document.body.offsetHeight;
  return performance.now() - t;
}"""


def write_page(n: int, folder: Path) -> dict:
    """The page of ``synthetic_page(n)`` in ``folder`` with a hard-linked thumbnail for every image."""
    import numpy as np
    from PIL import Image

    from fr_data.folders.report_folder import thumb_name
    from fr_data.review.page import render
    from tests.fr_data.review.builders import synthetic_page

    shutil.rmtree(folder, ignore_errors=True)
    (folder / "img").mkdir(parents=True)
    data = synthetic_page(n)
    t0 = time.perf_counter()
    text = render(data)
    render_s = time.perf_counter() - t0
    (folder / "index.html").write_text(text, encoding="utf-8")
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="JPEG", quality=85)
    face = folder / "face.jpg"
    face.write_bytes(buf.getvalue())
    for key in data.picks.keys():
        os.link(face, folder / thumb_name(key))
    return {"render_s": render_s, "html_mb": len(text.encode("utf-8")) / 1e6, "images": len(data.picks.keys())}


def renderer_processes() -> dict[int, tuple[float, float]]:
    """The renderer processes this benchmark started (descendants of this process): pid -> (proportional
    set size, private anonymous memory) in MB (``smaps_rollup`` Pss: shared pages divided among their
    users; ``status`` RssAnon)."""
    parent, found = {}, {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            cmd = (proc / "cmdline").read_bytes()
            rollup = (proc / "smaps_rollup").read_text() if b"--type=renderer" in cmd else ""
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(proc.name)
        parent[pid] = int(fields["PPid"])
        if rollup:
            pss = dict(line.split(":", 1) for line in rollup.splitlines()[1:])["Pss"]
            found[pid] = (int(pss.split()[0]) / 1024, int(fields.get("RssAnon", "0 kB").split()[0]) / 1024)

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parent.get(pid, 1)
        return False
    return {pid: mem for pid, mem in found.items() if ours(pid)}


def renderer_memory_mb(before: dict[int, tuple[float, float]]) -> dict[str, float]:
    """Memory of every renderer of this browser, and of the page's own one: the renderer whose private
    memory grew the most since ``before`` (``renderer_processes`` taken with the tab on about:blank; a
    renderer started since counts from 0), i.e. the one that loaded the page (the others are Chromium's
    spare renderers, which hold no page)."""
    now = renderer_processes()
    page = max(now, key=lambda pid: now[pid][1] - before.get(pid, (0.0, 0.0))[1])
    return {"renderer_pss_mb": sum(m[0] for m in now.values()), "renderer_anon_mb": sum(m[1] for m in now.values()),
            "renderers": len(now), "page_pss_mb": now[page][0], "page_anon_mb": now[page][1]}


def measure(index: Path, decisions: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto("about:blank")
        before = renderer_processes()
        page.goto(index.as_uri())
        wait_until(page, "() => window.hardmineReview && window.hardmineReview.ready > 0")
        ready = page.evaluate("hardmineReview.ready")
        page.wait_for_load_state("load")
        load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        page.evaluate("document.getElementById('suspects').scrollIntoView()")
        page.wait_for_selector("#suspects .item [data-decision=drop]")
        times = []
        for i in range(decisions):
            selector = f"#suspects .item:nth-child({i + 1}) [data-decision=drop]"
            times.append(page.evaluate(TIMED, [selector, "click"]))
        page.select_option("#suspects .filters [data-filter=metric]", label="margin")
        filter_ms = page.evaluate(TIMED, ["#suspects .filters [data-filter=min]", "0.5"])
        unfilter_ms = page.evaluate(TIMED, ["#suspects .filters [data-filter=min]", ""])
        hide_ms = page.evaluate(HIDE)
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        memory = renderer_memory_mb(before)
        browser.close()
    return {"interactive_ms": ready, "load_ms": load, "decision_ms_median": statistics.median(times),
            "decision_ms_max": max(times), "filter_ms": filter_ms, "unfilter_ms": unfilter_ms, "hide_ms": hide_ms,
            **memory, "js_heap_mb": metrics["JSHeapUsedSize"] / 1e6, "dom_nodes": metrics["Nodes"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, nargs="+", default=[1000, 10000], help="items per section")
    p.add_argument("--work", type=Path, default=Path("/tmp/hardmine-bench-page"), help="scratch folder")
    p.add_argument("--decisions", type=int, default=20, help="decisions timed")
    args = p.parse_args(argv)
    print(describe())
    for n in args.items:
        built = write_page(n, args.work / str(n))
        print(json.dumps({"items_per_section": n, **built, **measure(args.work / str(n) / "index.html",
                                                                     args.decisions)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
