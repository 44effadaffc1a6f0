"""Pool experiment folders of one recipe, each with its own pretrained backbone, and judge the goal on
the mean over backbones.

One experiment folder pretrains one backbone; its intervals resample pairs and fine-tuning seeds, not
pretraining, and the hard-pack gains of the DDL arms move by several points between two backbones of the
same recipe. Pooling answers the question a user has: averaged over the backbones they might have, what
does each arm buy? Per member (folder) the metric is averaged over its fine-tuning seeds; the gain over
``baseline`` is taken within the member (same backbone, same packs); the pooled value is the mean over
members, with a Student-t interval over members (the spread between backbones, not over pairs).

The best DDL arm is chosen on the pooled validation gains, then judged on the pooled test gains (the
test scores never choose anything), with the goal of the members' config.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fr_data.folders import experiment_folder as folder
from fr_data.io.config import from_dict
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.publish import staged_folder
from hardmine.experiment.config import GoalSection, differing_keys
from hardmine.experiment.stages import Layout
from hardmine.pipelines.stamps import read_stamp

__all__ = ["Member", "Pooled", "read_member", "member_files", "keep_member", "read_goal", "check_members",
           "common_arms", "pooled_gain", "best_arm", "goal_checks", "t_quantile", "pool_rows", "members_from_table", "read_mapping", "dotted", "SEED_KEYS",
           "BASELINE", "SPLITS"]

BASELINE = "baseline"
SPLITS = ("validation", "test")
#: Config keys that may differ between members: the data seeds and the fine-tuning seeds (other
#: backbones of the same recipe), and the tuning notes (text).
SEED_KEYS = ("seeds", "synth.seed", "packs.validation_seed", "packs.test_seed")
FREE_PREFIXES = ("tuning",)
#: Two-sided 97.5% quantiles of Student's t by degrees of freedom (1..30, then 40, 60, 120).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (the tabulated df at or below it:
    conservative between table entries)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T975[max(k for k in _T975 if k <= df)]


@dataclass(frozen=True)
class Member:
    """One experiment folder: its stored config, its pretrained backbone and, per split, the metric's mean
    over fine-tuning seeds per (arm, pack)."""

    path: Path
    config: dict[str, Any]
    backbone: str
    means: dict[str, dict[tuple[str, str], float]]
    seeds: dict[str, dict[str, int]]  # split -> arm -> number of seeds averaged

    @property
    def goal(self) -> GoalSection:
        return _goal(self.config, self.path)


@dataclass(frozen=True)
class Pooled:
    """One quantity per member, and its summary over members."""

    values: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    def interval(self) -> tuple[float, float]:
        """95% Student-t interval of the mean over members (NaN for a single member)."""
        n = len(self.values)
        if n < 2:
            return math.nan, math.nan
        half = t_quantile(n - 1) * float(self.values.std(ddof=1)) / math.sqrt(n)
        return self.mean - half, self.mean + half

    @property
    def positive(self) -> int:
        return int((self.values > 0).sum())


def read_member(path: str | os.PathLike, metric: str) -> Member:
    """Read an experiment folder's config, backbone stamp and both results files.

    Raises:
        DataError: naming the file that is missing or unreadable.
    """
    path = Path(path)
    config = read_mapping(path / folder.CONFIG)
    where = Layout(path).stamp("train")
    stamp = read_stamp(where)
    if stamp is None or not stamp.get("done") or "sha256" not in stamp.get("info", {}):
        raise DataError(where, "", "no finished pretraining stamp (is this an experiment folder?)")
    means, seeds = {}, {}
    for split in SPLITS:
        if not folder.results_path(path, split).is_file():
            raise DataError(folder.results_path(path, split), "", f"missing: the {split} packs were not scored")
        means[split], seeds[split] = _seed_means(folder.read_results(path, split).to_pylist(), metric)
    return Member(path, config, stamp["info"]["sha256"], means, seeds)


def member_files(path: str | os.PathLike) -> list[Path]:
    """The files of an experiment folder that :func:`read_member` reads (config, pretraining stamp, both
    results files), relative to it: all a pool needs of a draw, a few kB."""
    path = Path(path)
    files = [path / folder.CONFIG, Layout(path).stamp("train"), *(folder.results_path(path, s) for s in SPLITS)]
    return [f.relative_to(path) for f in files]


def keep_member(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the files :func:`read_member` needs of the finished experiment folder ``src`` into the new
    folder ``dst`` (e.g. to keep a draw in the repository and pool draws run on other machines); absolute
    paths under ``src`` in the stamp become ``$EXP/...``. Checks ``src`` first (as the pool would read it).

    Raises:
        DataError: ``src`` is not a finished experiment folder, or ``dst`` exists (or is being written).
    """
    src, dst = Path(src), Path(dst)
    read_member(src, "accuracy")
    with staged_folder(dst, False, "kept draw") as staging:
        for rel in member_files(src):
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            if rel.suffix == ".json":
                stamp = _relative(json.loads((src / rel).read_text()), str(src))
                (staging / rel).write_text(json.dumps(stamp, indent=1))
            else:
                shutil.copyfile(src / rel, staging / rel)
    return dst


def _relative(value: Any, root: str) -> Any:
    """``value`` (parsed JSON) with strings under the folder ``root`` written as ``$EXP/...``."""
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, root) for v in value]
    if isinstance(value, str) and (value == root or value.startswith(root + os.sep)):
        return "$EXP" + value[len(root):]
    return value


def read_goal(path: str | os.PathLike) -> GoalSection:
    """The goal of an experiment folder's stored config (without reading its results)."""
    return _goal(read_mapping(Path(path) / folder.CONFIG), Path(path))


def _goal(config: dict[str, Any], path: Path) -> GoalSection:
    return from_dict(GoalSection, dict(config.get("goal") or {}), f"{path / folder.CONFIG}: goal")


def read_mapping(path: Path, folder_kind: str = "an experiment folder") -> dict[str, Any]:
    """The YAML mapping at ``path`` (a folder's config file).

    Raises:
        DataError: naming ``path`` when it is missing (not ``folder_kind``), unreadable or not a mapping.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DataError(path, "", f"missing: not {folder_kind}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(path, "", f"unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(path, "", "not a mapping")
    return data


def _seed_means(rows: Sequence[dict[str, Any]], metric: str) -> tuple[dict[tuple[str, str], float], dict[str, int]]:
    """Mean of ``metric`` over seeds per (arm, pack), and the number of seeds per arm."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        value = row[metric]
        values[(row["arm"], row["pack"])].append(math.nan if value is None else float(value))
    seeds = {arm: len(v) for (arm, _), v in values.items()}
    return {key: float(np.mean(v)) for key, v in values.items()}, seeds


def check_members(members: Sequence[Member]) -> None:
    """Refuse fewer than two members, a backbone given twice, or recipes that differ beyond the seeds.

    Raises:
        ConfigError: naming the folders and the differing keys.
    """
    if len(members) < 2:
        raise ConfigError("pooling needs at least two experiment folders")
    seen: dict[str, Path] = {}
    for m in members:
        if m.backbone in seen:
            raise ConfigError(f"{m.path} and {seen[m.backbone]}: the same pretrained backbone (sha256 "
                              f"{m.backbone[:12]}...) twice; pool folders with different backbones")
        seen[m.backbone] = m.path
    first = members[0]
    arms = common_arms(members)
    if BASELINE not in arms:
        raise ConfigError(f"`{BASELINE}` is not scored on both splits in every folder ({', '.join(str(m.path) for m in members)}): "
                          "every gain is taken over it")
    _check_packs(members, arms)
    for m in members[1:]:
        keys = [k for k in differing_keys(_recipe(first.config, arms), _recipe(m.config, arms))
                if k not in SEED_KEYS and not k.startswith(FREE_PREFIXES)]
        if keys:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            raise ConfigError(f"{m.path / folder.CONFIG}: another recipe than {first.path / folder.CONFIG} "
                              f"(differing keys: {shown}); pool folders that differ only in {', '.join(SEED_KEYS)}")


def _check_packs(members: Sequence[Member], arms: Sequence[str]) -> None:
    """Every pooled arm of every member has a value for each pack of the goal, on both splits."""
    goal = members[0].goal
    for m in members:
        for split in SPLITS:
            missing = [(a, p) for a in arms for p in (goal.easy_pack, *goal.hard_packs) if (a, p) not in m.means[split]]
            if missing:
                arm, pack = missing[0]
                raise DataError(folder.results_path(m.path, split), f"arm {arm}",
                                f"no row for pack {pack} ({len(missing)} arm/pack pairs missing)")


def _recipe(config: dict[str, Any], arms: Sequence[str]) -> dict[str, Any]:
    """The config with only the arms every member ran (extra arms in one member do not block pooling)."""
    return {**config, "arms": {a: v for a, v in (config.get("arms") or {}).items() if a in arms}}


def common_arms(members: Sequence[Member]) -> list[str]:
    """Arms scored on both splits in every member, in the order of the first member's config."""
    def arms(m: Member) -> set[str]:
        return set.intersection(*({a for a, _ in m.means[s]} for s in SPLITS))

    shared = set.intersection(*(arms(m) for m in members))
    order = [*(members[0].config.get("arms") or {}), *sorted(shared)]
    return [a for a in dict.fromkeys(order) if a in shared]


def _gain(m: Member, split: str, arm: str, over: str, packs: Sequence[str]) -> float:
    return float(np.mean([m.means[split][(arm, p)] - m.means[split][(over, p)] for p in packs]))


def pooled_gain(members: Sequence[Member], split: str, arm: str, packs: Sequence[str],
                over: str = BASELINE) -> Pooled:
    """Per member, the mean over ``packs`` of ``arm``'s gain over ``over`` (seed means), in points."""
    return Pooled(100 * np.array([_gain(m, split, arm, over, packs) for m in members]))


def best_arm(members: Sequence[Member], goal: GoalSection) -> str | None:
    """The arm of ``goal.ddl_arms`` with the largest pooled hard-pack gain on the validation packs."""
    arms = common_arms(members)
    candidates = [a for a in goal.ddl_arms if a in arms]
    if not candidates or BASELINE not in arms:
        return None
    if len(candidates) == 1:  # nothing to choose (the validation packs need not hold the goal's packs)
        return candidates[0]
    gains = {a: pooled_gain(members, "validation", a, goal.hard_packs).mean for a in candidates}
    return max(gains, key=gains.get)


def goal_checks(members: Sequence[Member], goal: GoalSection, arm: str,
                split: str = "test") -> list[tuple[bool, str, Pooled]]:
    """The goal's criteria for ``arm`` on the pooled gains of ``split``: (met, what, the pooled gain)."""
    hard = pooled_gain(members, split, arm, goal.hard_packs)
    checks = [(hard.mean >= goal.min_gain, f"mean hard-pack gain over baseline (goal >= +{goal.min_gain})", hard)]
    for pack in goal.hard_packs:
        gain = pooled_gain(members, split, arm, [pack])
        checks.append((gain.mean >= 0, f"{pack} (goal: not worse)", gain))
    easy = pooled_gain(members, split, arm, [goal.easy_pack])
    checks.append((easy.mean >= -goal.easy_tolerance, f"{goal.easy_pack} (goal >= -{goal.easy_tolerance})", easy))
    if goal.competitor in common_arms(members):
        comp = pooled_gain(members, split, arm, goal.hard_packs, over=goal.competitor)
        checks.append((comp.mean >= goal.min_gain_over,
                       f"mean hard-pack gain over {goal.competitor} (goal >= +{goal.min_gain_over})", comp))
    return checks


def pool_rows(members: Sequence[Member], metric: str) -> list[dict[str, Any]]:
    """The rows of ``POOL/pool.parquet`` (:data:`fr_data.folders.pool_folder.POOL_SCHEMA`)."""
    arms, rows = common_arms(members), []
    for m in members:
        for split in SPLITS:
            for (arm, pack), value in m.means[split].items():
                if arm not in arms:
                    continue
                base = m.means[split].get((BASELINE, pack))
                rows.append({"member": str(m.path), "backbone": m.backbone, "split": split, "arm": arm,
                             "pack": pack, "metric": metric, "seeds": m.seeds[split][arm], "value": value,
                             "gain": None if base is None else value - base})
    return rows


def members_from_table(rows: Sequence[dict[str, Any]], listed: Sequence[dict[str, Any]],
                       recipe: dict[str, Any], table: Path) -> list[Member]:
    """The members again from the rows of ``POOL/pool.parquet`` (their seed means) and the members listed
    in ``POOL/pool.yaml`` (their order, backbones), each with the pooled ``recipe`` as its config.

    Raises:
        DataError: naming ``table`` when a listed member has no row.
    """
    means: dict[str, dict[str, dict[tuple[str, str], float]]] = defaultdict(lambda: {s: {} for s in SPLITS})
    seeds: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: {s: {} for s in SPLITS})
    for row in rows:
        value = math.nan if row["value"] is None else row["value"]
        means[row["member"]].setdefault(row["split"], {})[(row["arm"], row["pack"])] = value
        seeds[row["member"]].setdefault(row["split"], {})[row["arm"]] = row["seeds"]
    members = []
    for entry in listed:
        name = str(entry["folder"])
        if name not in means:
            raise DataError(table, f"member {name}", "no row for this member of pool.yaml")
        backbone = str(entry.get("backbone_sha256", ""))
        members.append(Member(Path(name), recipe, backbone, means[name], seeds[name]))
    return members


def dotted(config: dict[str, Any], key: str) -> Any:
    """The value at a dotted key of a nested mapping (None when absent)."""
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config
