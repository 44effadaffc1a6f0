"""Implausible flag rates give warning lines."""

from fr_data.mining.config import CalibrationConfig
from fr_data.mining.plausibility import flag_rates


def _counts(merge=1, dups=(1, 1), suspects=5):
    return {"classes": 10, "valid_vectors": 100, "merge_candidate_classes": merge, "suspect_mislabel": suspects,
            "duplicates_same_class": dups[0], "duplicates_cross_class": dups[1]}


def test_plausible_rates_give_no_warning():
    out = flag_rates(_counts(), CalibrationConfig())
    assert out["plausible"] and out["warnings"] == []
    assert out["rates"]["duplicates"] == {"flagged": 2, "of": 100, "rate": 0.02, "limit": 0.1}


def test_each_share_over_its_limit_is_one_warning_line():
    out = flag_rates(_counts(merge=3, dups=(6, 5), suspects=21), CalibrationConfig())
    assert not out["plausible"] and len(out["warnings"]) == 3
    assert out["warnings"][0].startswith("implausible flag rate: 3 of 10 classes (30.0%)")
    at_limit = flag_rates(_counts(merge=2, dups=(5, 5), suspects=20), CalibrationConfig())
    assert at_limit["plausible"]  # exactly at the limit is allowed
