"""Chart aggregates against numpy restatements over the same tables."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from fr_data.review import select, stats
from tests.fr_data.review.builders import make_review_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = make_review_run(tmp_path_factory.mktemp("stats"), seed=4)
    t = select.open_tables(data.run)
    yield t, pq.read_table(data.run / "samples.parquet").to_pydict()
    t.con.close()


def reference(values, lo, hi, bins):
    idx = np.clip(np.floor((np.asarray(values, float) - lo) / ((hi - lo) / bins)), 0, bins - 1).astype(int)
    return np.bincount(idx, minlength=bins)


def test_histogram_matches_numpy_with_end_bins_clipped(run):
    t, s = run
    h = stats.histogram(t, "samples", "quality_sdd", 20.0, 80.0, 6)
    assert h.counts[""].tolist() == reference(s["quality_sdd"], 20.0, 80.0, 6).tolist()
    assert h.edges.tolist() == pytest.approx([20, 30, 40, 50, 60, 70, 80])
    by = stats.histogram(t, "samples", "difficulty", 0.0, 1.0, 5, by="split")
    for split in ("easy", "medium", "hard"):
        values = [d for d, sp in zip(s["difficulty"], s["split"]) if sp == split]
        assert by.counts[split].tolist() == reference(values, 0.0, 1.0, 5).tolist()


def test_collect_covers_every_chart(run):
    t, s = run
    c = stats.collect(t)
    assert set(c.quality) == {"quality_cr", "quality_sdd"} and c.quality["quality_cr"].total == 36
    assert c.splits == {"easy": 18, "medium": 6, "hard": 12}
    assert sum(r["n"] for r in c.difficulty_bins) == 36
    profile_low = [d for d, p, r in zip(s["difficulty"], s["pose_bin"], s["resolution_bin"])
                   if p == "profile" and r == "low"]
    cell = next(r for r in c.difficulty_bins if (r["pose_bin"], r["resolution_bin"]) == ("profile", "low"))
    assert cell["n"] == len(profile_low) == 6 and cell["mean"] == pytest.approx(np.mean(profile_low))
    assert [g["group"] for g in c.groups] == ["A", "B"] and c.target_fpr == 1e-4
    pos = c.similarity["center_cos"]
    assert pos.total == 36 and pos.counts["hard"].sum() == 12
    assert c.pair_cos.total == 30 and set(c.pair_cos.counts) == {"easy_pos", "hard_pos", "hard_neg"}


def test_splits_are_ordered_easy_medium_hard_then_the_rest():
    assert stats.ordered_splits(["none", "hard", "easy", "medium"]) == ["easy", "medium", "hard", "none"]
