"""data.selection.review against hand counts on the tiny fake run (layout in builders.py): drops, keeps
that override the mining filters, merges and separations, and errors naming the review file and line."""

from __future__ import annotations

import pytest

from fr_data.io.errors import DataError
from fr_data.folders.review_file import Decision, write_review
from fr_train.data.config import SelectionConfig
from fr_train.data.selection import resolve_selection
from tests.fr_train.data.builders import make_tiny_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("review"))


def review_file(tmp_path, *decisions: Decision):
    path = tmp_path / "review.csv"
    write_review(path, list(decisions))
    return str(path)


def sample(key: str, action: str) -> Decision:
    return Decision(key, "sample", action)


def select(data, **kw):
    return resolve_selection(SelectionConfig(**kw), data.shards, data.run)


def test_drop_removes_the_key_and_is_counted_last(data, tmp_path):
    path = review_file(tmp_path, sample(data.key[0, 0], "drop"), sample(data.key[0, 3], "drop"))
    sel = select(data, drop_suspects=True, review=path)
    # (0, 3) is a suspect: counted under "suspect", the first reason that drops it; (0, 0) under "review"
    assert data.key[0, 0] not in set(sel.keys) and data.key[0, 3] not in set(sel.keys)
    rep = sel.report
    assert rep["dropped"] == {"not_in_run": 0, "suspect": 2, "review": 1}
    assert rep["total"] == rep["selected"] + sum(rep["dropped"].values()) == 36
    assert rep["review"]["dropped_by_review"] == 1 and rep["review"]["rows"]["drop"] == 2


def test_keep_overrides_the_mining_filters_only(data, tmp_path):
    suspect, duplicate, hard = data.key[0, 3], data.key[2, 1], data.key[5, 5]
    path = review_file(tmp_path, sample(suspect, "keep"), sample(duplicate, "keep"), sample(hard, "keep"),
                       sample(data.key[1, 1], "keep"))
    sel = select(data, drop_suspects=True, drop_duplicates=True, splits=["easy", "medium"], review=path)
    kept = set(sel.keys)
    assert {suspect, duplicate, hard} <= kept
    assert data.key[1, 4] not in kept and data.key[3, 2] not in kept  # the other suspect and duplicate
    # without the review: 21 selected (test_selection); the three overrides add 3 (the 4th key passes anyway)
    assert sel.report["selected"] == 24 and sel.report["review"]["kept_by_review"] == 3
    where = select(data, where="label <> 0", review=path)  # the user's own filters still apply
    assert suspect not in set(where.keys)


def test_merge_and_keep_apart_override_merge_classes(data, tmp_path):
    path = review_file(tmp_path, Decision(data.key[0, 0], "merge", "merge", 0, 1),
                       Decision(data.key[4, 0], "merge", "keep", 4, 5))
    sel = select(data, merge_classes=True, review=path)
    assert sel.num_classes == 5  # 0+1 merged, 4 and 5 kept apart
    assert sel.label_of(data.key[1, 2]) == sel.label_of(data.key[0, 2]) == 0
    assert sel.label_of(data.key[4, 0]) != sel.label_of(data.key[5, 0])
    rep = sel.report
    assert rep["merge_groups"] == [[0, 1]]
    assert rep["review"]["merges_added"] == 1 and rep["review"]["merge_candidates_kept_apart"] == 1
    plain = select(data, review=path)  # merge decisions apply without merge_classes too
    assert plain.num_classes == 5 and plain.report["review"]["merge_candidates_kept_apart"] == 0


def test_review_of_other_data_names_the_file_and_line(data, tmp_path):
    path = review_file(tmp_path, sample(data.key[0, 0], "drop"), sample("no-such-key", "keep"))
    with pytest.raises(DataError, match="not in the shards") as err:
        select(data, review=path)
    assert err.value.path == path and err.value.where == "line 3"
    wrong_label = review_file(tmp_path, Decision(data.key[2, 0], "merge", "merge", 3, 4))
    with pytest.raises(DataError, match="has label 2 in the shards, not 3") as err:
        select(data, review=wrong_label)
    assert err.value.where == "line 2"
    unknown = review_file(tmp_path, Decision(data.key[2, 0], "merge", "keep", 2, 99))
    with pytest.raises(DataError, match="label 99 has no sample"):
        select(data, review=unknown)
    with pytest.raises(DataError, match="review file not found"):
        select(data, review=str(tmp_path / "missing.csv"))


def test_a_relabelled_suspect_trains_under_its_new_label_and_section_keeps_stay_apart(data, tmp_path):
    suspect, duplicate = data.key[0, 3], data.key[2, 1]
    path = review_file(tmp_path, Decision(suspect, "sample", "relabel", 1, section="suspects"),
                       Decision(duplicate, "sample", "keep", section="suspects"),
                       Decision(duplicate, "sample", "drop", section="duplicates"))
    sel = select(data, drop_duplicates=True, review=path)
    assert sel.label_of(suspect) == sel.label_of(data.key[1, 0]) != sel.label_of(data.key[0, 0])
    assert duplicate not in set(sel.keys)  # the keep as a suspect does not undo the drop as a duplicate
    assert sel.report["review"]["relabelled"] == 1 and sel.report["review"]["rows"]["relabel"] == 1
