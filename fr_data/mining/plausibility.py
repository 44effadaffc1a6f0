"""Flag rates that make a mining run implausible.

A threshold that does not fit the backbone shows up as a flag rate no data set has: most classes merge
candidates, a large share of the samples duplicates or suspects. The shares that count as implausible are
``calibration.warn_*`` in the config; each one exceeded gives a warning line that the run records in
``run.json`` (``plausibility``) and ``hardmine mine`` prints at the end.
"""

from __future__ import annotations

from typing import Any

from fr_data.mining.config import CalibrationConfig

__all__ = ["flag_rates"]


def _rate(flagged: int, total: int) -> float:
    return flagged / total if total > 0 else 0.0


def flag_rates(counts: dict[str, Any], cfg: CalibrationConfig) -> dict[str, Any]:
    """The run's flag rates, their limits and one warning line per limit exceeded.

    Args:
        counts: ``run.json`` ``counts`` (classes, valid_vectors, merge_candidate_classes, suspect_mislabel,
            duplicates_same_class, duplicates_cross_class).
        cfg: the limits (``warn_merge_share``, ``warn_duplicate_share``, ``warn_suspect_share``).
    """
    dups = counts["duplicates_same_class"] + counts["duplicates_cross_class"]
    checks = [
        ("merge_candidate_classes", counts["merge_candidate_classes"], counts["classes"], "classes",
         cfg.warn_merge_share, "classes.merge_cos / classes.merge_mix"),
        ("duplicates", dups, counts["valid_vectors"], "samples", cfg.warn_duplicate_share, "duplicates.cos"),
        ("suspect_mislabel", counts["suspect_mislabel"], counts["valid_vectors"], "samples",
         cfg.warn_suspect_share, "noise.*"),
    ]
    rates, warnings = {}, []
    for name, flagged, total, unit, limit, keys in checks:
        rate = _rate(flagged, total)
        rates[name] = {"flagged": int(flagged), "of": int(total), "rate": round(rate, 6), "limit": limit}
        if rate > limit:
            warnings.append(f"implausible flag rate: {flagged} of {total} {unit} ({rate:.1%}) flagged as "
                            f"{name.replace('_', ' ')}, more than the {limit:.0%} limit; check the thresholds "
                            f"({keys}) against run.json calibration and sweep.parquet")
    return {"rates": rates, "warnings": warnings, "plausible": not warnings}
