"""Screenshots of a review page (the PNGs in docs/), taken with Debian's chromium through Playwright.

    python tools/demo.py --out demo
    python docs/screenshot_report.py demo/report --out docs/img

Writes OUT/<prefix>_overview.png (the top of the page) and OUT/<prefix>_<section>.png for each --sections
entry (scrolled to it, after a "drop" and a "keep" on its first two items, to show how decisions look;
--prefix review by default, e.g. --width 390 --height 844 --prefix review_390 for a phone's screen),
reduced to --colors colours (256 by default: a few hundred KB each; 0 keeps them as taken). Needs the dev
extra (playwright) and a chromium binary (--chromium, default: chromium on PATH); a throwaway browser
context is used, so no decision is stored. Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--hide-scrollbars"]
DEMO_DECISIONS = ("drop", "keep")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", type=Path, help="report folder (holds index.html)")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    p.add_argument("--sections", nargs="*", default=["suspects"], help="sections to capture")
    p.add_argument("--width", type=int, default=1440, help="viewport width in CSS pixels")
    p.add_argument("--height", type=int, default=960, help="viewport height in CSS pixels")
    p.add_argument("--chromium", default=shutil.which("chromium"), help="chromium executable")
    p.add_argument("--colors", type=int, default=256, help="palette size of the PNGs (0: full colour)")
    p.add_argument("--prefix", default="review", help="file name prefix of the PNGs")
    return p


def decide_first_items(page, section: str) -> None:
    """Drop the first item of ``section`` and keep the second (shows the decided look). The page renders
    its lists near the viewport, so the section is scrolled to first."""
    page.evaluate("id => document.getElementById(id).scrollIntoView()", section)
    page.wait_for_timeout(300)
    items = page.locator(f"#{section} .item[data-key]")
    for i, decision in enumerate(DEMO_DECISIONS[:items.count()]):
        button = items.nth(i).locator(f"[data-decision={decision}]")
        if button.count():
            button.click()


def reduce_colours(path: Path, colours: int) -> None:
    """Rewrite a PNG with a palette of ``colours`` colours (screenshots compress several times better)."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT,
                                           dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def capture(report: Path, out: Path, sections: list[str], size: tuple[int, int], chromium: str,
            prefix: str = "review") -> list[Path]:
    """Take the screenshots; return their paths."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        page.goto((report / "index.html").resolve().as_uri())
        page.wait_for_load_state("load")
        written.append(out / f"{prefix}_overview.png")
        page.screenshot(path=written[-1])
        for section in sections:
            decide_first_items(page, section)
            page.evaluate("id => document.getElementById(id).scrollIntoView()", section)
            page.mouse.move(0, 0)
            page.wait_for_timeout(300)  # lazy images near the viewport
            written.append(out / f"{prefix}_{section}.png")
            page.screenshot(path=written[-1])
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.report / "index.html").is_file():
        print(f"error: {args.report / 'index.html'}: no review page there (run tools/report.py)", file=sys.stderr)
        return 2
    if not args.chromium or not Path(args.chromium).exists():
        print("error: chromium not found (apt-get install -y chromium, or pass --chromium)", file=sys.stderr)
        return 2
    for path in capture(args.report, args.out, args.sections, (args.width, args.height), args.chromium,
                        args.prefix):
        if args.colors:
            reduce_colours(path, args.colors)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
