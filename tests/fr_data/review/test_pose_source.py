"""The review page says which signal its pose bins came from (run.json ``bins.pose_source``)."""

from __future__ import annotations

from fr_data.review import figures, stats
from fr_data.review.page import PageData, render
from tests.fr_data.review.test_page import Elements, flagged


def test_the_overview_names_the_pose_and_resolution_sources():
    run = {"bins": {"pose_source": "landmarks", "resolution_source": "embeddings index"}}
    cells = [t.strip() for t in Elements(render(PageData("r", "RUN", flagged(), run=run))).text]
    assert cells[cells.index("pose bins") + 1] == "landmarks"
    assert cells[cells.index("resolution bins") + 1] == "embeddings index"


def test_a_run_without_bins_has_no_source_table():
    assert "pose bins" not in render(PageData("r", "RUN", flagged(), run={}))


def test_the_difficulty_chart_labels_the_pose_source():
    cell = {"pose_bin": "frontal", "resolution_bin": "high", "mean": 0.2, "n": 3}
    data = stats.Stats(difficulty_bins=[cell], pose_source="flip_cos")
    fig = figures.difficulty_bins_chart(data)
    assert fig.axes[0].get_ylabel() == "pose bin (from flip_cos)"
