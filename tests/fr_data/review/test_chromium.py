"""The review page in a real browser (Debian's chromium via Playwright, opened from file://): every image
loads, nothing leaves file://, item counts equal the run's counts capped at N, a decision survives a
reload, the export downloads review.csv, and training with that file drops the key."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from fr_data.folders.review_file import read_review
from fr_data.io.config import deep_merge
from fr_data.review import build_report
from fr_train.config import load_train_config
from fr_train.trainer import run as train_run
from tests.demo_run import TINY
from tests.fr_data.review.browsers import (images_seen_while_scrolling, open_page, run_counts, show_section,
                                          shown_counts)


def image_states(page) -> list[list]:
    return images_seen_while_scrolling(page)


def item_counts(page) -> dict[str, int]:
    return shown_counts(page)


def test_counts_are_capped_at_n(chromium, tiny_demo, tmp_path):
    out = tiny_demo[0]
    expected = run_counts(out / "mined")
    assert expected["duplicates"] > 3 and expected["merges"] >= 1
    small = build_report(out / "mined", out / "shards", tmp_path / "report", per_section=3)
    opened = open_page(chromium, small.index)
    assert item_counts(opened.page) == {k: min(3, v) for k, v in expected.items()}
    assert all(done and width > 0 for done, width, _ in image_states(opened.page)) and opened.errors == []
    opened.close()


def test_review_in_chromium_then_train_with_the_exported_file(chromium, tiny_demo, tmp_path):
    out = tiny_demo[0]
    index = out / "report" / "index.html"
    opened = open_page(chromium, index)
    page, requests, errors = opened.page, opened.requests, opened.errors
    expected = run_counts(out / "mined")
    assert item_counts(page) == {k: min(200, v) for k, v in expected.items()}
    images = image_states(page)
    assert len(images) > 10 and all(done and width > 0 for done, width, _ in images), images
    if expected["suspects"] == 0:
        assert "no suspected mislabels in this run" in page.inner_text("#suspects")

    show_section(page, "duplicates")
    item = page.locator("#duplicates .item[data-key]").first
    key = item.get_attribute("data-key")
    item.locator("[data-decision=drop]").click()
    show_section(page, "merges")
    merge = page.locator("#merges .item[data-key]").first
    labels = (int(merge.get_attribute("data-label")), int(merge.get_attribute("data-other-label")))
    merge.locator("[data-decision=merge]").click()
    assert page.inner_text("#review-status").startswith("2 decided")

    page.reload()
    page.wait_for_load_state("load")
    show_section(page, "duplicates")
    kept = page.locator(f'#duplicates .item[data-key="{key}"]')
    assert kept.get_attribute("data-decided") == "drop"
    assert kept.locator("[data-decision=drop]").get_attribute("aria-pressed") == "true"
    show_section(page, "merges")
    assert page.locator("#merges .item[data-key]").first.get_attribute("data-decided") == "merge"

    with page.expect_download() as download:
        page.click("#export")
    assert download.value.suggested_filename == "review.csv"
    csv = tmp_path / "review.csv"
    download.value.save_as(csv)
    review = read_review(csv)
    assert review.keys("drop") == [key] and review.pairs("merge") == [tuple(sorted(labels))]
    assert [d.key for d in review.merges()] == [merge.get_attribute("data-key")]
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    assert [url for url in requests if url.startswith("file://")]
    assert opened.violations() == [] and opened.console == []
    opened.close()

    overrides = deep_merge(TINY.train_overrides, {
        "data": {"shards": str(out / "shards"), "run": str(out / "mined"), "selection": {"review": str(csv)}},
        "train": {"output": str(tmp_path / "train"), "max_steps": 2, "log_every": 1, "progress": False}})
    result = train_run(load_train_config(TINY.train_config, overrides))
    selection = pq.read_table(tmp_path / "train" / "selected.parquet").column("key").to_pylist()
    assert key not in selection and len(selection) == tiny_demo[1]["counts"]["shard"]["samples"] - 1
    report = json.loads((tmp_path / "train" / "selection.json").read_text())
    assert report["dropped"]["review"] == 1 and report["review"]["merges_added"] == 1
    label_map = pq.read_table(tmp_path / "train" / "label_map.parquet").to_pydict()
    new = dict(zip(label_map["old_label"], label_map["new_label"]))
    assert new[labels[0]] == new[labels[1]]
    assert result.checkpoint is not None
