"""Charts of any data render and show text as written; ``mine --report`` says the run is complete when only
the page fails.

Real mining runs of one image, two images (two identities) and one identity of five images, over real
shards (``tests/fr_train/data/builders.py``) and random embeddings, go through ``hardmine report``: a
group of one identity has no negatives, so its false positive rate is NaN (it made the axis limits NaN).
A group named ``$\\frac{x$`` (unbalanced math to matplotlib) is drawn as plain text, in the review charts
and in the experiment's figures.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from matplotlib.text import Text
from PIL import Image

from fr_data.folders.run_folder import GROUPS_SCHEMA
from fr_data.io.errors import DataError
from fr_data.io.parquet import write_table
from fr_data.review import figures, stats
from hardmine.cli import mine, report
from hardmine.experiment.figures import pool_figure
from tests.fr_data.mining.planted import write_emb
from tests.fr_data.review.builders import make_review_run
from tests.fr_train.data.builders import make_shards

MATH = "$\\frac{x$"


def mined_with_shards(tmp: Path, labels: list[int]) -> tuple[Path, Path]:
    """Shards of ``labels``, random embeddings of their keys, and ``hardmine mine`` of them: (RUN, SHARDS)."""
    by_index = make_shards(tmp / "shards", labels)
    keys = [by_index[i] for i in range(len(labels))]
    vectors = np.random.default_rng(len(labels)).normal(size=(len(labels), 16)).astype(np.float32)
    truth = SimpleNamespace(keys=keys, labels=np.asarray(labels), flip_cos=np.full(len(labels), 0.9, np.float32),
                            resolution=np.full(len(labels), 1.0, np.float32))
    emb = write_emb(tmp / "EMB", vectors, truth)
    with contextlib.redirect_stdout(io.StringIO()):
        assert mine.main(["--embeddings", str(emb), "--out", str(tmp / "RUN"), "--samples",
                          str(tmp / "shards" / "samples.parquet"), "--quiet"]) == 0
    return tmp / "RUN", tmp / "shards"


@pytest.mark.parametrize("labels", [[0], [0, 1], [0] * 5], ids=["one_image", "two_images", "one_identity"])
def test_report_of_a_tiny_run_renders_its_charts(tmp_path, capsys, labels):
    run, shards = mined_with_shards(tmp_path, labels)
    out = tmp_path / "report"
    assert report.main([str(run), "--shards", str(shards), "--out", str(out), "--quiet"]) == 0, \
        capsys.readouterr().err
    drawn = json.loads((out / "report.json").read_text())["figures"]
    assert "difficulty" in drawn
    for relative in drawn.values():
        with Image.open(out / relative) as im:
            assert im.format == "PNG" and im.width > 100


def texts_of(fig) -> list[Text]:
    fig.canvas.draw()  # makes the tick labels
    return [t for t in fig.findobj(Text) if MATH in t.get_text()]


def test_a_math_like_group_name_is_drawn_as_written(tmp_path):
    chart = stats.Stats(groups=[{"group": MATH, "source": "kmeans", "fpr": 2e-4, "fpr_ratio": 1.5},
                                {"group": "B", "source": "kmeans", "fpr": float("nan"), "fpr_ratio": None}],
                        target_fpr=1e-4)
    (tmp_path / "figures").mkdir()
    with figures.matplotlib.rc_context(figures.LITERAL_TEXT):
        fig = figures.group_fpr_chart(chart)
    figures.save_figure(fig, tmp_path / "figures" / "g.png")
    shown = texts_of(fig)
    assert shown and not any(t.get_parse_math() for t in shown)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [MATH]  # the NaN group is left out
    assert figures.draw_all(chart, tmp_path) == {"group_fpr": "figures/group_fpr.png"}


def test_a_math_like_arm_and_pack_name_in_the_experiment_figures(tmp_path):
    path = pool_figure({MATH: {MATH: (1.0, 0.5, 1.5, [0.7, 1.2])}}, [MATH], MATH, tmp_path / "gain.png")
    with Image.open(path) as im:
        assert im.format == "PNG"


def test_the_review_page_of_a_math_like_group(tmp_path, capsys):
    data = make_review_run(tmp_path / "data")
    groups = pa.table({"group": [MATH, "B"], "source": ["kmeans"] * 2, "n_samples": [18, 18], "n_classes": [6, 6],
                       "fpr": [2e-4, 5e-5], "fpr_ratio": [1.6, 0.4]})
    write_table(groups, data.run / "groups.parquet", GROUPS_SCHEMA)
    out = tmp_path / "report"
    assert report.main([str(data.run), "--shards", str(data.shards), "--out", str(out), "--per-section", "1",
                        "--quiet"]) == 0, capsys.readouterr().err
    assert (out / "figures" / "group_fpr.png").is_file()


@pytest.mark.parametrize("failure, code", [(DataError("x.parquet", "", "bad"), 2), (RuntimeError("boom"), 1)])
def test_mine_report_failure_says_the_run_is_complete(tmp_path, monkeypatch, capsys, failure, code):
    _, shards = mined_with_shards(tmp_path / "d", [0, 0, 1, 1])
    emb = tmp_path / "d" / "EMB"

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr("fr_data.review.build_report", fail)  # mine imports it when it writes the page
    out = tmp_path / "RUN"
    rc = mine.main(["--embeddings", str(emb), "--out", str(out), "--samples", str(shards / "samples.parquet"),
                    "--report", str(tmp_path / "page"), "--quiet"])
    # (a run of two tiny classes may also print plausibility warnings: the error is one line of its own)
    err = "\n".join(line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning: "))
    assert rc == code and err.count("\n") == 0, err
    assert f"the mining run is complete and published at {out}; the review page failed: " in err
    assert str(failure) in err and (out / "run.json").is_file()
    shutil.rmtree(out)
