"""The overview shows the calibrated thresholds (``run.json: calibration``), the pixel check of duplicate
candidates and the run's calibration figure, copied into the report's ``figures/``."""

from __future__ import annotations

import json
import shutil

import pytest

from fr_data.folders.report_folder import INDEX_FILE, read_manifest
from fr_data.review import build_report, figures
from tests.fr_data.review.builders import make_review_run

PNG = b"\x89PNG\r\n\x1a\n" + b"calibration figure stand-in"
CALIBRATION = {
    "duplicates.cos": {"key": "duplicates.cos", "value": 0.98765, "method": "nn_distance_ratio",
                       "statistic": "median cosine distance to the nearest neighbour = 0.0123",
                       "params": {"ratio": 0.13}, "sample_size": 36, "source": "cleanlab"},
    "classes.merge_cos": {"key": "classes.merge_cos", "value": 0.5, "method": "override", "statistic": "",
                          "params": {}, "sample_size": 0, "source": ""},
}
PIXEL = {"pixel_min": 0.985, "candidate_margin": 2.0, "candidate_cos_floor": 0.9753, "candidates": 7,
         "confirmed": 5, "rejected": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_review_run(tmp_path_factory.mktemp("calview"))


def build(data, tmp_path, monkeypatch, run_extra: dict, figure: bool):
    monkeypatch.setattr(figures, "CHARTS", {})  # the usual charts are tested elsewhere
    run = tmp_path / "run"
    shutil.copytree(data.run, run)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, **run_extra}))
    if figure:
        (run / "calibration.png").write_bytes(PNG)
    out = tmp_path / "report"
    build_report(run, data.shards, out, per_section=1)
    return out, (out / INDEX_FILE).read_text()


def test_calibrated_values_pixel_check_and_figure_are_shown(data, tmp_path, monkeypatch):
    out, text = build(data, tmp_path, monkeypatch, {"calibration": CALIBRATION,
                                                    "duplicates_pixel_check": PIXEL}, figure=True)
    assert "Calibrated thresholds" in text
    assert "0.9877" in text and "nn_distance_ratio" in text and "median cosine distance" in text
    assert "override" in text
    assert "5 of 7 candidate pairs" in text and "0.9753" in text
    assert (out / "figures" / "calibration.png").read_bytes() == PNG
    assert 'src="figures/calibration.png"' in text
    assert read_manifest(out)["figures"]["calibration"] == "figures/calibration.png"


def test_a_run_without_calibration_has_neither_table_nor_figure(data, tmp_path, monkeypatch):
    out, text = build(data, tmp_path, monkeypatch, {}, figure=False)
    assert "Calibrated thresholds" not in text and "calibration.png" not in text
    assert not (out / "figures" / "calibration.png").exists()


def test_skipped_pixel_check_says_why(data, tmp_path, monkeypatch):
    _, text = build(data, tmp_path, monkeypatch, {"duplicates_pixel_check": {"skipped": "no shard manifest"}},
                    figure=False)
    assert "pixel check skipped" in text and "no shard manifest" in text
