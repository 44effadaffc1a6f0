"""Human-readable summary of a mining run (what ``hardmine mine`` prints)."""

from __future__ import annotations

from typing import Any


def format_sweep(rows: list[dict[str, Any]]) -> str:
    """The threshold sweep as an aligned text table (default values marked with ``*``)."""
    lines = [f"{'threshold':<20} {'value':>8} {'flagged':>9}  unit"]
    for r in rows:
        mark = "*" if r["is_default"] else " "
        lines.append(f"{r['threshold']:<20} {r['value']:>8.4f}{mark} {r['flagged']:>8}  {r['unit']}")
    return "\n".join(lines)


def format_calibration(run: dict[str, Any]) -> str:
    """One line: each decision threshold in force and how it was obtained."""
    cal = run.get("calibration") or {}
    parts = [f"{key} {'off' if c['value'] is None else format(c['value'], '.4f')} ({c['method']})"
             for key, c in cal.items()]
    return "thresholds: " + ", ".join(parts)


def warning_lines(run: dict[str, Any]) -> list[str]:
    """The run's implausible-flag-rate warnings (``run.json`` ``plausibility``), one line each."""
    return list((run.get("plausibility") or {}).get("warnings", []))


def format_summary(run: dict[str, Any]) -> str:
    """Counts, thresholds, groups and the sweep of a ``run.json`` dict."""
    c = run["counts"]
    lines = [
        f"rows {c['input_rows']} (valid {c['valid_vectors']}, NaN {c['nan_vectors']}, "
        f"zero {c['zero_vectors']}); "
        f"classes {c['classes']} (single-image {c['single_image_classes']}, "
        f"merge candidates {c['merge_candidate_classes']})",
        f"suspected mislabels {c['suspect_mislabel']}; duplicates same-class {c['duplicates_same_class']}, "
        f"cross-class {c['duplicates_cross_class']}",
        f"split {c['split']}; pairs {c['pairs']}",
        f"neighbour search: {run['neighbour_strategy']}; unified FPR threshold "
        f"{run['thresholds']['unified_fpr_threshold']} at FPR {run['thresholds']['target_fpr']}",
    ]
    if run.get("calibration"):
        lines.append(format_calibration(run))
    attrs = run.get("attributes")
    if attrs:
        lines.append(f"attributes joined by {attrs['joined_by']}: {attrs['rows']} rows, "
                     f"{attrs['unmatched_attribute_rows']} matched no sample, "
                     f"{attrs['samples_without_attributes']} samples without attributes")
    groups = run["groups"]
    lines.append(f"groups ({groups['source']}): " + ", ".join(
        f"{g['group']} FPR x{g['fpr_ratio']:.2f}" for g in groups["rows"]))
    lines.append(format_sweep(run["sweep"]))
    return "\n".join(lines)
