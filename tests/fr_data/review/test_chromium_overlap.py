"""The review page's ``#overlap`` section (``hardmine report --overlap DIR``) in Chromium: one card per
overlapping class and per leaked training image with the evaluation images (read from the ``.bin`` pack
and the image folder) and their cosines, decisions exported as section ``overlap`` and imported back, and
training honouring them; an embeddings folder's images are placeholders; bad folders are one-line errors."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.folders import overlap_folder as of
from fr_data.folders.review_file import read_review
from fr_data.io.parquet import write_table
from fr_data.review.page import num
from fr_train.data.config import SelectionConfig
from fr_train.data.selection import resolve_selection
from hardmine.cli import overlap, report
from tests.fr_data.review.browsers import open_page, show_section, wait_until
from tests.fr_data.review.overlap_run import expected_cards, make_overlap_run

CARDS = """() => Array.from(document.querySelectorAll('#overlap .item[data-key]')).map(e => ({
  key: e.getAttribute('data-key'), match: e.getAttribute('data-match'),
  label: Number(e.getAttribute('data-train-label')), decided: e.getAttribute('data-decided') || '',
  cos: e.querySelector('.metrics dd').textContent,
  evals: Array.from(e.querySelectorAll('figure.eval img')).map(i => i.complete && i.naturalWidth > 0),
  placeholders: Array.from(e.querySelectorAll('figure.eval .thumb.missing')).map(d => d.textContent)}))"""


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    data = make_overlap_run(tmp_path_factory.mktemp("overlap_section"))
    out = data.root / "report"
    assert report.main([str(data.run), "--shards", str(data.shards), "--out", str(out), "--overlap",
                        str(data.audit), "--quiet"]) == 0
    return data, out


def all_cards(page) -> list[dict]:
    """Every card of the section (scrolled until the lazy list has rendered all it shows)."""
    show_section(page, "overlap")
    total = page.evaluate("hardmineReview.shown('overlap')")
    for _ in range(20):
        if page.locator("#overlap .item[data-key]").count() == total:
            page.evaluate("() => document.querySelectorAll('#overlap img').forEach(i => { i.loading = 'eager'; })")
            wait_until(page, "() => Array.from(document.querySelectorAll('#overlap img')).every(i => i.complete)")
            return page.evaluate(CARDS)
        page.locator("#overlap .item[data-key]").last.scroll_into_view_if_needed()
    raise AssertionError(f"rendered {page.locator('#overlap .item[data-key]').count()} of {total} overlap cards")


def test_cards_decisions_round_trip_and_training(chromium, made, tmp_path):
    data, out = made
    want = expected_cards(data.audit)
    manifest = json.loads((out / "report.json").read_text())
    assert manifest["sections"]["overlap"] == {"total": len(want), "shown": len(want)}
    opened = open_page(chromium, out / "index.html")
    page = opened.page
    cards = all_cards(page)
    assert len(cards) == len(want) and {c["match"] for c in cards} == {"identity", "image"}
    image_cards = {(c["label"], c["key"]): c for c in cards if c["match"] == "image"}
    identity_cards = {c["label"]: c for c in cards if c["match"] == "identity"}
    assert {("image", label, key) for label, key in image_cards} | {
        ("identity", label, None) for label in identity_cards} == set(want)
    for (match, label, key), cos in want.items():
        card = image_cards[label, key] if match == "image" else identity_cards[label]
        assert card["cos"] == num(cos)
        assert card["evals"] and all(card["evals"]) and not card["placeholders"]  # pack and folder images load
    leaked = {key for _, key in image_cards}
    assert not {c["key"] for c in identity_cards.values()} & leaked  # a class card never names a leaked image
    assert opened.violations() == [] and opened.errors == []
    assert all(u.startswith("file://") for u in opened.requests)

    # drop a leaked image (a true copy), keep one class (a false match), export, import in another profile
    drop_key = min(leaked)
    kept = min(identity_cards)
    page.locator(f'#overlap .item[data-key="{drop_key}"] [data-decision=drop]').click()
    page.locator(f'#overlap .item[data-key="{identity_cards[kept]["key"]}"] [data-decision=keep]').click()
    with page.expect_download() as download:
        page.click("#export")
    csv = tmp_path / "review.csv"
    download.value.save_as(csv)
    rows = {(d.section, d.key, d.decision) for d in read_review(csv).decisions}
    assert rows == {("overlap", drop_key, "drop"), ("overlap", identity_cards[kept]["key"], "keep")}
    opened.close()
    second = open_page(chromium, out / "index.html")
    second.page.set_input_files("#import-file", str(csv))
    wait_until(second.page, "document.getElementById('review-status').textContent.startsWith('2 decided')")
    decided = {(c["key"], c["decided"]) for c in all_cards(second.page) if c["decided"]}
    assert decided == {(drop_key, "drop"), (identity_cards[kept]["key"], "keep")}
    assert second.violations() == [] and second.errors == []
    second.close()

    # training: the kept class trains (bar its leaked images), the other overlapping classes do not
    sel = resolve_selection(SelectionConfig(exclude_overlap=str(data.audit), review=str(csv)), data.shards, data.run)
    index = pq.read_table(data.emb / "index.parquet")
    label_of = dict(zip(index.column("key").to_pylist(), index.column("label").to_pylist()))
    trained = set(sel.keys)
    assert {k for k, label in label_of.items() if label == kept} - leaked <= trained
    assert not {k for k, label in label_of.items() if label in set(identity_cards) - {kept}} & trained
    assert drop_key not in trained and sel.report["overlap"]["overlap_classes_kept"] == 1


def test_an_embeddings_folder_shows_placeholders(chromium, made, tmp_path):
    data, _ = made
    audit, out = tmp_path / "OVL", tmp_path / "report"
    assert overlap.main(["--embeddings", str(data.emb), "--eval", str(data.emb), "--out", str(audit),
                         "--threshold", "0.99"]) == 0
    assert report.main([str(data.run), "--shards", str(data.shards), "--out", str(out), "--overlap", str(audit),
                        "--quiet", "--per-section", "3"]) == 0
    opened = open_page(chromium, out / "index.html")
    cards = all_cards(opened.page)
    assert len(cards) == 3
    for c in cards:
        assert not c["evals"] and c["placeholders"]
        assert set(c["placeholders"]) == {"an embeddings folder holds no image"}
    assert opened.violations() == [] and opened.errors == []
    opened.close()


def _fails(made, folder, capsys, *fragments):
    data, _ = made
    out = folder.parent / "report-bad"
    assert report.main([str(data.run), "--shards", str(data.shards), "--out", str(out), "--overlap", str(folder),
                        "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hardmine report: error: "), err
    for fragment in fragments:
        assert fragment in err[0]
    assert not out.exists()


def test_a_folder_that_is_not_an_overlap_folder_or_of_other_data_is_refused(made, tmp_path, capsys):
    data, _ = made
    _fails(made, data.run, capsys, "overlap.json", "not an overlap folder")
    moved = tmp_path / "OVL"
    shutil.copytree(data.audit, moved)
    info = json.loads((moved / of.INFO_FILE).read_text())
    info["inputs"]["embeddings"] = str(data.shards)  # an existing folder that is not the run's EMB
    (moved / of.INFO_FILE).write_text(json.dumps(info))
    _fails(made, moved, capsys, "overlap.json", "inputs.embeddings")
    info["inputs"]["embeddings"] = str(data.emb)
    info["model"]["spec"]["model"] = "iresnet50"
    (moved / of.INFO_FILE).write_text(json.dumps(info))
    _fails(made, moved, capsys, "overlap.json", "model")
    info["model"]["spec"]["model"] = "tiny"
    (moved / of.INFO_FILE).write_text(json.dumps(info))
    table = of.read_overlap(moved)
    write_table(table.set_column(table.schema.get_field_index("label"), "label",
                                 pa.array([999] * table.num_rows, pa.int64())), moved / of.OVERLAP_FILE,
                of.OVERLAP_SCHEMA)
    _fails(made, moved, capsys, "overlap.parquet", "label 999", "other embeddings")
