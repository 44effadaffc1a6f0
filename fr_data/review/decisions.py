"""A curator's decisions (``review.csv``, exported by the review page) applied to the training selection.

``data.selection.review: review.csv`` (format: ``fr_data.folders.review_file``):

* ``drop`` (in any section) removes the key; it is counted under the drop reason ``review``, the last one,
  so the count says what the review removed beyond the other filters;
* ``keep`` lets the key through the mining filter of the section it was made in (``suspects``:
  ``drop_suspects``, ``duplicates``: ``drop_duplicates``; any other section or none: every mining filter,
  ``splits`` included) that would have dropped it (counted as ``kept_by_review``); the user's own filters
  (``key_list``, ``query``, ``where``) still apply. A suspect's keep therefore never undoes a duplicate's
  drop or keep of the same image;
* ``relabel:L`` trains the key under label ``L`` (counted as ``relabelled``); merges then apply to the
  new label;
* ``merge:A:B`` merges labels ``A`` and ``B`` whatever ``merge_classes`` says;
* ``keep:A:B`` keeps ``A`` and ``B`` apart even when ``merge_classes`` would merge them.

Decisions of the ``overlap`` section (``hardmine report --overlap DIR``) are read with
``data.selection.exclude_overlap: DIR``, the folder that says what each card's key stands for
(:mod:`fr_data.review.overlap`); without it they are an error naming the first such line:

* ``keep`` is a false match the curator rejected: a leaked training image (a key ``DIR`` names as
  ``train_key`` of an image match) trains again, and for any other key its whole class trains again (the
  class an identity card showed). It lifts no mining filter (counted as ``overlap_classes_kept`` /
  ``overlap_images_kept``);
* ``drop`` confirms the match: the key is dropped like any ``drop``, and ``exclude_overlap`` drops the
  class or image anyway (as it does for undecided cards).

Every key must be in the shards and a merge row's key must carry label ``A`` there: a review of other
data is an error naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fr_data.folders.review_file import Decision, Review
from fr_data.io.errors import DataError

MINING_REASONS = ("split", "suspect", "duplicate")
#: The mining filter a section's ``keep`` overrides (sections not listed: every mining filter).
SECTION_REASONS = {"suspects": ("suspect",), "duplicates": ("duplicate",), "overlap": ()}
OVERLAP_SECTION = "overlap"


def positions(review: Review, rows: list[Decision], keys: np.ndarray) -> np.ndarray:
    """Positions of the rows' keys in ``keys`` (sorted).

    Raises:
        DataError: naming the review file and the line of the first key the shards do not hold.
    """
    wanted = np.asarray([d.key for d in rows], dtype=str)
    pos = np.searchsorted(keys, wanted)
    pos[pos >= len(keys)] = 0
    known = keys[pos] == wanted if len(keys) else np.zeros(len(wanted), bool)
    if not known.all():
        bad = rows[int(np.flatnonzero(~known)[0])]
        raise DataError(review.path, f"line {bad.line}", f"key {bad.key!r} is not in the shards")
    return pos


def _mask(review: Review, rows: list[Decision], keys: np.ndarray) -> np.ndarray:
    mask = np.zeros(len(keys), bool)
    mask[positions(review, rows, keys)] = True
    return mask


def _keeps(review: Review, reason: str) -> list[Decision]:
    """The ``keep`` rows that override the mining filter ``reason``."""
    return [d for d in review.samples("keep") if reason in SECTION_REASONS.get(d.section, MINING_REASONS)]


def apply_filters(review: Review, keys: np.ndarray, conditions: dict[str, np.ndarray]) -> dict[str, int]:
    """Let ``keep`` keys pass the mining conditions and add the ``review`` condition (in place).

    Args:
        review: the decisions.
        keys: the candidate keys, sorted.
        conditions: drop reason -> mask of the samples passing it (``selection.keep_conditions``).
    """
    _mask(review, review.samples("keep"), keys)  # every key must be in the shards, whatever its section
    drop = _mask(review, review.samples("drop"), keys)
    mining = [reason for reason in MINING_REASONS if reason in conditions]
    before = np.logical_and.reduce([conditions[r] for r in mining]) if mining else np.ones(len(keys), bool)
    for reason in mining:
        conditions[reason] = conditions[reason] | _mask(review, _keeps(review, reason), keys)
    after = np.logical_and.reduce([conditions[r] for r in mining]) if mining else before
    conditions["review"] = ~drop
    return {"kept_by_review": int((after & ~before).sum())}


def overlap_rows(review: Review) -> list[Decision]:
    """The sample rows made in the ``overlap`` section."""
    return [d for d in review.decisions if d.kind == "sample" and d.section == OVERLAP_SECTION]


def check_overlap_rows(review: Review, exclude_overlap: object) -> None:
    """Refuse overlap-section decisions without the overlap folder they were made on.

    Raises:
        DataError: naming the review file and the line of the first overlap row.
    """
    rows = overlap_rows(review)
    if rows and exclude_overlap is None:
        raise DataError(review.path, f"line {rows[0].line}", "a decision of the overlap section: set "
                        "data.selection.exclude_overlap to the overlap folder the page was built with")


def apply_overlap(review: Review, keys: np.ndarray, labels: np.ndarray, conditions: dict[str, np.ndarray],
                  leaked: set[str]) -> dict[str, int]:
    """Let the overlap section's ``keep`` keys through ``exclude_overlap`` (in place): a leaked training
    image (in ``leaked``) passes ``overlap_image``, any other key's class passes ``overlap_class``.

    Args:
        keys: the candidate keys, sorted; ``labels`` their labels.
        conditions: with the ``overlap_class`` and ``overlap_image`` masks (samples passing them).
        leaked: the training keys of the folder's image matches.
    """
    rows = [d for d in overlap_rows(review) if d.action == "keep"]
    pos = positions(review, rows, keys)
    image = np.asarray([d.key in leaked for d in rows], bool)
    images, classes = pos[image], pos[~image]
    report = {"overlap_images_kept": int((~conditions["overlap_image"][images]).sum()),
              "overlap_classes_kept": len(np.unique(labels[classes][~conditions["overlap_class"][classes]]))}
    conditions["overlap_image"][images] = True
    conditions["overlap_class"] |= np.isin(labels, labels[classes])
    return report


def apply_relabels(review: Review, keys: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """``labels`` (of the sorted ``keys``) with each ``relabel:L`` row's key moved to label ``L``.

    Raises:
        DataError: a relabel row whose key is not in the shards.
    """
    rows = review.samples("relabel")
    out = labels.copy()
    out[positions(review, rows, keys)] = np.asarray([d.label for d in rows], dtype=labels.dtype)
    return out, {"relabelled": int((out != labels).sum())}


def apply_merges(review: Review, keys: np.ndarray, labels: np.ndarray,
                 pairs: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], dict[str, int]]:
    """The label pairs to merge: ``pairs`` (from ``merge_classes``) without the pairs the review keeps
    apart, plus the pairs it merges.

    Raises:
        DataError: a merge row whose key is not in the shards, whose key has another label than ``A``,
            or whose label ``B`` has no sample.
    """
    rows = review.merges()
    found = labels[positions(review, rows, keys)] if rows else np.zeros(0, np.int64)
    known = set(np.unique(labels).tolist())
    for d, label in zip(rows, found.tolist()):
        if label != d.label:
            raise DataError(review.path, f"line {d.line}", f"key {d.key!r} has label {label} in the shards, "
                                                           f"not {d.label}")
        if d.other_label not in known:
            raise DataError(review.path, f"line {d.line}", f"label {d.other_label} has no sample in the shards")
    apart = set(review.pairs("keep"))
    kept = [p for p in pairs if (min(p), max(p)) not in apart]
    added = review.pairs("merge")
    report = {"merges_added": len(added),
              "merge_candidates_kept_apart": len({(min(p), max(p)) for p in pairs} & apart)}
    return kept + added, report


def review_report(review: Review, dropped: int, filters: dict[str, int], merges: dict[str, int]) -> dict[str, Any]:
    """The ``review`` entry of the selection report."""
    return {"file": str(review.path), "rows": review.counts(), "dropped_by_review": dropped, **filters, **merges}


def merge_representatives(pairs: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Union-find over label pairs: each label in a pair -> the smallest label of its component."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        """Root of ``x``, compressing the path walked."""
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {label: find(label) for label in list(parent)}
