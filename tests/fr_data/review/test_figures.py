"""Every chart: drawn from data with a title, axis labels and units, skipped without data, saved as PNG."""

from __future__ import annotations

import pytest
from PIL import Image

from fr_data.review import figures, select, stats
from tests.fr_data.review.builders import make_review_run


@pytest.fixture(scope="module")
def chart_data(tmp_path_factory):
    data = make_review_run(tmp_path_factory.mktemp("figures"))
    t = select.open_tables(data.run)
    yield stats.collect(t)
    t.con.close()


@pytest.mark.parametrize("name", list(figures.CHARTS))
def test_each_chart_has_a_title_and_labelled_axes(chart_data, name):
    fig = figures.CHARTS[name](chart_data)
    assert fig is not None
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert fig.get_suptitle() or all(ax.get_title() for ax in axes)
    assert all(ax.get_xlabel() for ax in axes)
    assert axes[0].get_ylabel()


def test_charts_without_data_are_not_drawn():
    empty = stats.Stats()
    assert all(draw(empty) is None for draw in figures.CHARTS.values())


def test_draw_all_writes_readable_pngs(chart_data, tmp_path):
    (tmp_path / "figures").mkdir()
    drawn = figures.draw_all(chart_data, tmp_path)
    assert set(drawn) == set(figures.CHARTS)
    for relative in drawn.values():
        with Image.open(tmp_path / relative) as im:
            assert im.format == "PNG" and im.size[0] > 400
