"""Decisions that last, in Chromium: each section's decision is its own, they are keyed by the data set (a
re-mine of the same data and a reload keep them), review.csv exports and imports exactly, a second browser
profile importing it sees the same decisions, and ``build_report(decisions=...)`` pre-fills the page."""

from __future__ import annotations

import pytest

from fr_data.folders.review_file import format_review, read_review
from fr_data.review import build_report
from hardmine.cli.mine import main as mine_main
from tests.fr_data.review.browsers import open_page, show_section, wait_until
from tests.fr_data.review.builders import make_review_run

SUSPECT = "000000003"  # image 3 of class 0: a suspect (builders.py)
SHARED = "000000013"  # image 1 of class 2: a duplicate, and among the low-quality images
DECIDED = """sid => Array.from(document.querySelectorAll('#' + sid + ' .item[data-key]'))
  .filter(e => e.getAttribute('data-decided'))
  .map(e => [e.getAttribute('data-key'), e.getAttribute('data-decided')]).sort()"""


def decided(page) -> dict[str, list]:
    """Section -> [key, decision] of its decided items (each section scrolled into view, as it renders lazily)."""
    page.locator("#quality .filters [data-filter=label]").fill("2")
    out = {}
    for sid in ("suspects", "duplicates", "merges", "quality"):
        show_section(page, sid)
        out[sid] = page.evaluate(DECIDED, sid)
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("decisions")
    data = make_review_run(tmp, named=True)  # each image's file: id<label>/<key>.jpg
    return data, build_report(data.run, data.shards, tmp / "report", per_section=50)


def item(page, sid: str, key: str):
    show_section(page, sid)
    return page.locator(f'#{sid} .item[data-key="{key}"]')


def decide_across_sections(page) -> None:
    """Keep a suspect, relabel the other, drop a duplicate and keep the same image as a low-quality one,
    keep the merge pair apart."""
    item(page, "suspects", SUSPECT).locator("[data-decision=keep]").click()
    page.locator(f"#suspects .item[data-key]:not([data-key='{SUSPECT}']) [data-decision=relabel]").click()
    item(page, "duplicates", SHARED).locator("[data-decision=drop]").click()
    show_section(page, "merges")
    page.locator("#merges .item [data-decision=keep]").click()
    page.locator("#quality .filters [data-filter=label]").fill("2")  # the label filter finds the image
    item(page, "quality", SHARED).locator("[data-decision=keep]").click()


def test_each_section_decides_on_its_own_and_export_import_round_trips(chromium, report, tmp_path):
    _, result = report
    first = open_page(chromium, result.index)
    page = first.page
    decide_across_sections(page)
    assert item(page, "duplicates", SHARED).get_attribute("data-decided") == "drop"  # not replaced by the keep
    assert page.locator("#merges .item [data-decision=keep]").inner_text() == "Keep apart"
    assert page.inner_text("#review-status") == "5 decided (2 keep, 1 drop, 1 relabel, 1 keep apart)"
    with page.expect_download() as download:
        page.click("#export")
    csv = tmp_path / "review.csv"
    download.value.save_as(csv)
    text = csv.read_bytes().decode("utf-8")
    review = read_review(csv)
    assert text.startswith("key,decision,section,source_path\r\n")  # the file names each decided file
    assert format_review(review.decisions) == text  # Python reads and writes the page's file exactly
    rows = {(d.section, d.key, d.decision, d.source_path) for d in review.decisions}
    (merge,) = review.merges()
    assert merge.decision == "keep:4:5" and merge.source_path == f"id04/{merge.key}.jpg"
    assert rows - {("merges", merge.key, "keep:4:5", merge.source_path)} == {
        ("suspects", SUSPECT, "keep", "id00/000000003.jpg"), ("suspects", "000000010", "relabel:2", "id01/000000010.jpg"),
        ("duplicates", SHARED, "drop", "id02/000000013.jpg"), ("quality", SHARED, "keep", "id02/000000013.jpg")}
    shown = decided(page)
    assert shown["quality"] == [[SHARED, "keep"]] and shown["duplicates"] == [[SHARED, "drop"]]
    assert first.violations() == [] and first.errors == []
    first.close()

    second = open_page(chromium, result.index)  # a new context: another profile, nothing stored
    page = second.page
    assert page.inner_text("#review-status") == "0 decided"
    page.set_input_files("#import-file", str(csv))
    wait_until(page, "document.getElementById('review-status').textContent.startsWith('5 decided')")
    assert "imported 5 decision(s)" in page.inner_text("#import-status")
    assert page.evaluate("hardmineReview.csv()") == text  # import then export: the same bytes
    assert decided(page) == shown
    assert second.violations() == [] and second.errors == []
    second.close()


def test_a_bad_file_imports_nothing_and_an_old_file_decides_every_section(chromium, report, tmp_path):
    _, result = report
    opened = open_page(chromium, result.index)
    page = opened.page
    bad = tmp_path / "bad.csv"
    bad.write_text("key,decision,section\r\nk,keep,suspects\r\nj,explode,suspects\r\n")
    page.set_input_files("#import-file", str(bad))
    wait_until(page, "!document.getElementById('import-status').hidden")
    assert "line 3" in page.inner_text("#import-status") and page.inner_text("#review-status") == "0 decided"
    old = tmp_path / "old.csv"
    old.write_text(f"key,decision\n{SHARED},keep\n")  # before sections: a keep for every section
    page.set_input_files("#import-file", str(old))
    wait_until(page, "document.getElementById('review-status').textContent.startsWith('1 decided')")
    assert page.evaluate("hardmineReview.csv()") == f"key,decision,section\r\n{SHARED},keep,\r\n"  # as imported
    page.locator("#quality .filters [data-filter=label]").fill("2")
    assert item(page, "quality", SHARED).get_attribute("data-decided") == "keep"
    assert item(page, "duplicates", SHARED).get_attribute("data-decided") == "keep"
    assert opened.errors == []
    opened.close()


def test_the_page_starts_from_the_decisions_it_was_built_with(chromium, report, tmp_path):
    data, _ = report
    csv = tmp_path / "review.csv"
    csv.write_text(f"key,decision,section\r\n{SUSPECT},drop,suspects\r\n")
    result = build_report(data.run, data.shards, tmp_path / "report", per_section=5, decisions=csv)
    opened = open_page(chromium, result.index)
    page = opened.page
    assert item(page, "suspects", SUSPECT).get_attribute("data-decided") == "drop"
    item(page, "suspects", SUSPECT).locator("[data-decision=keep]").click()
    page.reload()
    page.wait_for_load_state("load")
    assert item(page, "suspects", SUSPECT).get_attribute("data-decided") == "keep"  # applied once, not again
    assert opened.violations() == [] and opened.errors == []
    opened.close()


def test_decisions_survive_a_re_mine_of_the_same_data_and_a_reload(chromium, tiny_demo, tmp_path):
    out = tiny_demo[0]
    run, page_dir = tmp_path / "run", tmp_path / "report"
    argv = ["--embeddings", str(out / "emb"), "--out", str(run), "--samples", str(out / "shards" / "samples.parquet"),
            "--report", str(page_dir), "--overwrite", "--quiet"]
    assert mine_main(argv) == 0
    run_json = (run / "run.json").read_text()
    opened = open_page(chromium, page_dir / "index.html")
    page = opened.page
    show_section(page, "duplicates")
    key = page.locator("#duplicates .item[data-key]").first.get_attribute("data-key")
    page.locator("#duplicates .item[data-key]").first.locator("[data-decision=drop]").click()
    before = page.evaluate("document.body.dataset.run")

    assert mine_main(argv) == 0  # hardmine mine --overwrite: a new run.json, the same data
    assert (run / "run.json").read_text() != run_json
    page.reload()
    page.wait_for_load_state("load")
    assert page.evaluate("document.body.dataset.run") != before  # the page is of the new run ...
    assert item(page, "duplicates", key).get_attribute("data-decided") == "drop"  # ... and the decision is kept
    assert page.inner_text("#review-status").startswith("1 decided")
    opened.close()


def test_a_file_naming_each_image_file_imports_too(chromium, report, tmp_path):
    _, result = report
    opened = open_page(chromium, result.index)
    page = opened.page
    named = tmp_path / "named.csv"  # review_file.format_review adds source_path when decisions name files
    text = f'key,decision,section,source_path\r\n{SUSPECT},drop,suspects,"0000045/0,2.jpg"\r\n'
    named.write_bytes(text.encode())
    page.set_input_files("#import-file", str(named))
    wait_until(page, "document.getElementById('review-status').textContent.startsWith('1 decided')")
    assert item(page, "suspects", SUSPECT).get_attribute("data-decided") == "drop"
    assert page.evaluate("hardmineReview.csv()") == text  # the file's path is kept (the file wins)
    assert opened.errors == []
    opened.close()
