"""The experiment config (``configs/experiments/*.yaml``): data sizes, the training recipes, the arms.

Loaded like every other config (``base:`` chains, an unknown key is a ConfigError naming the key). One
file holds every size: ``sizes: {small: {...}, full: {...}}`` maps a size name to a partial config merged
over the rest of the file, and every size is validated whichever one runs. Paths inside the config
(``pretrain.config``, ``finetune.config``, ``mining``) are relative to the experiment file named on the
command line (also when a ``base:`` file states them), or absolute.
An arm states only what differs from the fine-tuning recipe (``train:``, merged over ``finetune.config``
+ ``finetune.overrides``) and may extend another arm (``extends: clean``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fr_data.io.config import deep_merge, from_dict, load_yaml_with_bases
from fr_data.io.errors import ConfigError
from fr_data.synth import PACKS, SynthConfig

__all__ = ["SynthSection", "PacksSection", "TrainSection", "FinetuneSection", "ArmConfig", "AttackSection",
           "EvalSection",
           "GoalSection", "TuningEntry", "ExperimentConfig", "load_experiment", "experiment_dict",
           "differing_keys", "with_data_seed", "SIZES", "SYNTH_PACK_FIELDS"]

#: The sizes every experiment file must define.
SIZES = ("small", "full")


#: SynthConfig's defaults (one home for them).
_SYNTH_DEFAULTS = {f.name: f.default for f in fields(SynthConfig)}


@dataclass
class SynthSection:
    """The synthetic training set: ``fr_data.synth.SynthConfig`` without the pack fields (packs come from
    other seeds, see :class:`PacksSection`); defaults are SynthConfig's, except the set's size."""

    identities: int = 300
    images_per_identity: int = 30
    seed: int = _SYNTH_DEFAULTS["seed"]
    mislabel_rate: float = _SYNTH_DEFAULTS["mislabel_rate"]
    duplicate_rate: float = _SYNTH_DEFAULTS["duplicate_rate"]
    cross_duplicate_share: float = _SYNTH_DEFAULTS["cross_duplicate_share"]
    split_identity_rate: float = _SYNTH_DEFAULTS["split_identity_rate"]


#: SynthConfig fields the experiment does not take from its synth section (the packs are its own section).
SYNTH_PACK_FIELDS = ("holdout_identities", "pairs")


@dataclass
class PacksSection:
    """Validation and test packs (synth_easy, synth_pose, synth_lowres) of held-out people.

    Attributes:
        pairs: pairs per pack (half genuine).
        identities: held-out identities per split.
        validation_seed / test_seed: synth seeds of the two splits (other seeds: other people than the
            training set's and each other's).
    """

    pairs: int = 4000
    identities: int = 300
    validation_seed: int = 1001
    test_seed: int = 2002


@dataclass
class TrainSection:
    """A training recipe: a training YAML (relative to the experiment file) plus overrides."""

    config: str = "../synth_tiny_cosface.yaml"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class FinetuneSection(TrainSection):
    """The fine-tuning recipe every arm starts from, and the compute every arm gets.

    Attributes:
        images: images forwarded per arm and seed (classification batches plus composer branches plus
            low-resolution copies): each arm's step count is ``round(images / images_per_step)``.
        tolerance: largest allowed relative difference of an arm's images from ``images``.
        init_head: start every arm's classification head from the pretrained run's classifier (merged
            classes averaged; ``fr_train.objective.head_init``) instead of a random one; an arm may still say
            ``init: {head: null}``.
    """

    images: int = 24000
    tolerance: float = 0.05
    init_head: bool = True


@dataclass
class ArmConfig:
    """One arm of the experiment.

    Attributes:
        description: one line for the report.
        extends: another arm whose settings this one starts from (chains allowed).
        mining: the arm reads the mining run (``data.run`` is set to the experiment's mining folder).
        train: training-config overrides merged over the fine-tuning recipe (and the extended arm's).
    """

    description: str = ""
    extends: str | None = None
    mining: bool = False
    train: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttackSection:
    """Verification under attack (:mod:`fr_train.evaluation.attack`): extra results rows
    ``PACK@pgdE`` (e.g. ``synth_easy@pgd4``) of the fine-tuned arms, one per pack and strength.

    Attributes:
        eps: L-inf strengths in 1/255 pixel steps (e.g. ``[0, 2, 4, 8]``); empty: no attack rows.
        packs: the pack stems attacked.
        steps: PGD steps.
        step_ratio: PGD step size as a fraction of eps.
        seed: seeds the random starts.
        pairs: attack (and score under attack) only this many pairs of each attacked pack, half genuine and
            half impostor (the first of each kind in pack order, ``hardmine.experiment.jobs.attacked_pairs``);
            None: every pair. With a number, ``PACK@pgd0`` is the clean score of those pairs, not of the whole
            pack.
        splits: the pack splits attacked (``validation``, ``test``).
    """

    eps: list[int] = field(default_factory=list)
    packs: list[str] = field(default_factory=lambda: ["synth_easy"])
    steps: int = 10
    step_ratio: float = 0.25
    seed: int = 0
    pairs: int | None = None
    splits: list[str] = field(default_factory=lambda: ["validation", "test"])


@dataclass
class EvalSection:
    """Scoring of the packs and the intervals of the report.

    Attributes:
        batch_size: images per forward pass.
        folds: folds of the accuracy protocol.
        bootstrap: bootstrap replicates (pairs resampled with replacement).
        interval: coverage of the intervals.
        seed: seed of the bootstrap draws.
        attack: verification under attack of the arms (off unless ``attack.eps`` is given).
    """

    batch_size: int = 128
    folds: int = 10
    bootstrap: int = 1000
    interval: float = 0.95
    seed: int = 0
    attack: AttackSection = field(default_factory=AttackSection)


@dataclass
class GoalSection:
    """The goal the verdict checks (issue 9, section 4), in TPR points at ``metric``.

    Attributes:
        metric: results column compared.
        hard_packs / easy_pack: pack stems.
        min_gain: mean gain over ``baseline`` on the hard packs, best candidate arm.
        easy_tolerance: largest allowed loss on the easy pack.
        min_gain_over: the competitor arm and the mean gain the best arm needs over it.
        ddl_arms: the arms competing for "best arm" (chosen on validation); the key keeps its first name,
            the arms may be of any method (FAN, AFA).
        method: what the verdict calls those arms ("Best DDL arm ...", "Best AFA arm ...").
    """

    metric: str = "tpr_at_fpr_1e_2"
    hard_packs: list[str] = field(default_factory=lambda: ["synth_pose", "synth_lowres"])
    easy_pack: str = "synth_easy"
    min_gain: float = 2.0
    easy_tolerance: float = 0.5
    competitor: str = "lowres_aug"
    min_gain_over: float = 1.0
    ddl_arms: list[str] = field(default_factory=lambda: ["ddl", "ddl_ot"])
    method: str = "DDL"


@dataclass
class TuningEntry:
    """One line of the report's "what was tuned" table."""

    parameter: str = ""
    values: list[Any] = field(default_factory=list)
    chosen: Any = None
    arms: list[str] = field(default_factory=list)
    packs: str = "validation"
    note: str = ""


@dataclass
class ExperimentConfig:
    """A whole experiment at one size (see the module docstring)."""

    size: str = "full"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    synth: SynthSection = field(default_factory=SynthSection)
    packs: PacksSection = field(default_factory=PacksSection)
    per_shard: int = 1000
    pretrain: TrainSection = field(default_factory=TrainSection)
    mining: str = "../mining_demo.yaml"
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluation: EvalSection = field(default_factory=EvalSection)
    goal: GoalSection = field(default_factory=GoalSection)
    tuning: list[TuningEntry] = field(default_factory=list)
    source: str = ""  # the YAML file (paths inside it are relative to its folder)

    def arm(self, name: str) -> ArmConfig:
        """The arm ``name`` as stated (before ``extends`` is resolved)."""
        return from_dict(ArmConfig, self.arms[name], f"arms.{name}")

    def path(self, relative: str) -> Path:
        """A path of the config resolved against the experiment file's folder."""
        return (Path(self.source).parent / relative).resolve()


def _validate(cfg: ExperimentConfig, where: str) -> None:
    for name in cfg.arms:
        seen = [name]
        while (parent := cfg.arm(seen[-1]).extends) is not None:
            if parent not in cfg.arms:
                raise ConfigError(f"{where}: arms.{seen[-1]}.extends: unknown arm {parent!r}")
            if parent in seen:
                raise ConfigError(f"{where}: arms.{name}: circular extends {seen + [parent]}")
            seen.append(parent)
    checks = [
        (bool(cfg.arms), "arms: at least one arm is needed"),
        (cfg.finetune.images >= 1, f"finetune.images must be >= 1, got {cfg.finetune.images}"),
        (0 < cfg.finetune.tolerance < 1, f"finetune.tolerance must lie in (0, 1), got {cfg.finetune.tolerance}"),
        (cfg.packs.pairs >= 20, f"packs.pairs must be >= 20, got {cfg.packs.pairs}"),
        (cfg.packs.identities >= 2, f"packs.identities must be >= 2, got {cfg.packs.identities}"),
        (len({cfg.synth.seed, cfg.packs.validation_seed, cfg.packs.test_seed}) == 3,
         "synth.seed, packs.validation_seed and packs.test_seed must differ (held-out people)"),
        (cfg.evaluation.bootstrap >= 10, f"evaluation.bootstrap must be >= 10, got {cfg.evaluation.bootstrap}"),
        (0 < cfg.evaluation.interval < 1, f"evaluation.interval must lie in (0, 1), got {cfg.evaluation.interval}"),
        *_attack_checks(cfg.evaluation.attack),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {message}")


def _attack_checks(attack: AttackSection) -> list[tuple[bool, str]]:
    packs = [spec.name for spec in PACKS]
    return [
        (all(0 <= e <= 255 for e in attack.eps) and len(set(attack.eps)) == len(attack.eps),
         f"evaluation.attack.eps must be distinct strengths in [0, 255] (1/255 steps), got {attack.eps}"),
        (all(p in packs for p in attack.packs), f"evaluation.attack.packs must name packs of {packs}, got {attack.packs}"),
        (attack.steps >= 1, f"evaluation.attack.steps must be >= 1, got {attack.steps}"),
        (attack.step_ratio > 0, f"evaluation.attack.step_ratio must be > 0, got {attack.step_ratio}"),
        (attack.pairs is None or attack.pairs >= 20, f"evaluation.attack.pairs must be >= 20 or null, got {attack.pairs}"),
        (set(attack.splits) <= {"validation", "test"},
         f"evaluation.attack.splits must be among validation and test, got {attack.splits}"),
    ]


def load_experiment(path: str | os.PathLike, size: str = "full") -> ExperimentConfig:
    """The experiment of ``path`` at ``size``; every size of the file is validated.

    Raises:
        ConfigError: naming the file, the size and the key (unknown key, wrong type, bad value, an arm
            extending an unknown arm, a circular ``extends``).
    """
    data = load_yaml_with_bases(path)
    sizes = data.pop("sizes", None) or {}
    missing = [s for s in SIZES if s not in sizes]
    if missing or not isinstance(sizes, dict):
        raise ConfigError(f"{path}: sizes: needs a partial config for each of {list(SIZES)}, missing {missing}")
    if size not in sizes:
        raise ConfigError(f"{path}: unknown size {size!r} (sizes: {sorted(sizes)})")
    chosen = None
    for name, partial in sizes.items():
        where = f"{path} (size {name})"
        merged = deep_merge(data, {**(partial or {}), "size": name, "source": str(Path(path).resolve())})
        try:
            cfg = from_dict(ExperimentConfig, merged)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        _validate(cfg, where)
        if name == size:
            chosen = cfg
    return chosen


def with_data_seed(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """``cfg`` with training set seed ``seed`` and pack seeds ``1001 * seed`` (validation) and
    ``1001 * (seed + 1)`` (test): other people in each split, as in the shipped configs (3: 3003 / 4004)."""
    if seed < 1:
        raise ConfigError(f"--data-seed: must be >= 1 (the packs' seeds 1001*S must differ from the training "
                          f"set's S), got {seed}")
    return replace(cfg, synth=replace(cfg.synth, seed=seed),
                   packs=replace(cfg.packs, validation_seed=1001 * seed, test_seed=1001 * (seed + 1)))


def experiment_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain data (what ``EXP/experiment.yaml`` holds); ``source`` left out so
    that the same config read from another checkout compares equal, and ``evaluation.attack`` when it is
    off."""
    out = asdict(cfg)
    out.pop("source")
    if not cfg.evaluation.attack.eps:  # off: folders made before the section existed still match
        out["evaluation"].pop("attack")
    return out


def differing_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings (added and removed keys included)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new), key=str)
        return [k for key in keys
                for k in differing_keys(old.get(key, _MISSING), new.get(key, _MISSING), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".") or "<root>"]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
