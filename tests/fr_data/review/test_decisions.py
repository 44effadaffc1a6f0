"""fr_data.review.decisions: a review's keep/drop rows against hand-counted masks, and the module needs no torch
(the data side applies decisions without the training stack)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fr_data.folders.review_file import parse_review
from fr_data.io.errors import DataError
from fr_data.review.decisions import apply_filters, apply_relabels
from tests.repo import ROOT


def test_importing_the_decisions_imports_no_torch():
    code = "import sys, fr_data.review.decisions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_keep_lets_a_key_through_the_mining_filters_and_drop_adds_the_review_condition():
    review = parse_review("key,decision\nb,keep\nc,drop\n")
    keys = np.array(["a", "b", "c", "d"])
    conditions = {"suspect": np.array([True, False, True, False]), "where": np.array([True, True, True, False])}
    counts = apply_filters(review, keys, conditions)
    assert conditions["suspect"].tolist() == [True, True, True, False]  # b kept despite the suspect flag
    assert conditions["where"].tolist() == [True, True, True, False]  # the user's own filter still applies
    assert conditions["review"].tolist() == [True, True, False, True]  # c dropped by the review
    assert counts == {"kept_by_review": 1}


def test_a_key_outside_the_shards_names_the_file_and_line():
    review = parse_review("key,decision\na,keep\nzz,drop\n", "r.csv")
    with pytest.raises(DataError, match=r"r\.csv.*line 3.*'zz' is not in the shards"):
        apply_filters(review, np.array(["a", "b"]), {})


def test_a_sections_keep_overrides_only_that_sections_filter():
    # "b" is kept as a suspect but dropped as a duplicate; "c" kept as a duplicate; "d" kept with no section
    review = parse_review("key,decision,section\nb,keep,suspects\nb,drop,duplicates\nc,keep,duplicates\n"
                          "d,keep,\n")
    keys = np.array(["a", "b", "c", "d"])
    conditions = {"suspect": np.array([True, False, False, False]),
                  "duplicate": np.array([True, True, False, False])}
    counts = apply_filters(review, keys, conditions)
    assert conditions["suspect"].tolist() == [True, True, False, True]  # c's duplicates keep leaves it a suspect
    assert conditions["duplicate"].tolist() == [True, True, True, True]
    assert conditions["review"].tolist() == [True, False, True, True]  # b's drop stands beside its keep
    assert counts == {"kept_by_review": 2}  # b (then dropped by review) and d pass every mining filter now


def test_relabel_moves_the_key_to_its_new_label():
    review = parse_review("key,decision,section\nc,relabel:9,suspects\n")
    labels, counts = apply_relabels(review, np.array(["a", "b", "c"]), np.array([0, 0, 1]))
    assert labels.tolist() == [0, 0, 9] and counts == {"relabelled": 1}
