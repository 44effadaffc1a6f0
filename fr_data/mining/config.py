"""Mining thresholds and sizes, one dataclass per concern, with the public source of every default.

All cosine thresholds depend on the model that made the embeddings, so the decision thresholds default
to ``auto``: calibrated from the run's own similarity distributions at the rate stated in
``calibration`` (``fr_data.mining.calibration``; sources in ``docs/mining.md``). A number overrides the
calibration. The run also writes a sweep of how many samples or classes each candidate threshold would
flag, so an override can be read off the curve, as insightface's ``dataset_merge.py`` did.

Load from YAML with ``fr_data.io.config.load_config(path, MiningConfig)`` (unknown keys are errors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from fr_data.io.errors import ConfigError

#: Sub-center ArcFace drop rule (insightface ``recognition/subcenter_arcface/drop.py``): keep samples
#: within 75 degrees of the dominant centre.
COS_75_DEGREES = math.cos(math.radians(75.0))

#: The config value that asks for a threshold calibrated from the run (``fr_data.mining.calibration``).
AUTO = "auto"
Auto = Literal["auto"]


@dataclass
class NeighbourConfig:
    """Sample-to-sample k-NN used for the label vote and duplicates.

    Attributes:
        k: neighbours per sample (cleanlab's label and near-duplicate checks default to k=10).
        candidate_classes: for large N, a sample is compared with the samples of its own class and of
            its ``candidate_classes`` nearest other class centres only (not with all N samples).
        exact_max_n: at or below this many valid vectors, exact k-NN over all samples is used instead.
        centre_k: class centres returned per sample by the sample-to-centre search (nearest other
            class, candidate classes, and the negatives counted by the instance FPR).
        chunk_rows: embeddings read from the memmap per chunk (bounds memory).
    """

    k: int = 10
    candidate_classes: int = 3
    exact_max_n: int = 20_000
    centre_k: int = 32
    chunk_rows: int = 32_768


@dataclass
class ClassConfig:
    """Identity-level checks.

    Attributes:
        merge_cos: two labels are a merge candidate (likely one person) when their centres have at
            least this cosine. ``auto`` (default): the ``calibration.merge_split_quantile`` of the run's
            split-half centre cosines. A number overrides it: 0.5 is MS-Celeb-1M_WashList's "same person
            with a high probability"; insightface's dataset_merge.py uses 0.3 to drop overlapping
            identities across data sets and 0.4 to exclude test identities (all in the sweep; they fit a
            well-trained backbone only). null: rule off.
        merge_mix: ... or when the two labels' k-NN votes cross between them at least this share of what
            one person split in two would give (1 expected; see ``fr_data.mining.merges``). null: off.
    """

    merge_cos: float | Auto | None = AUTO
    merge_mix: float | None = 0.8


@dataclass
class NoiseConfig:
    """Label-noise (mislabel) detection by k-NN vote plus centre margin.

    A sample is a suspect when the plurality label of its self-excluded k nearest neighbours differs
    from its own label (cleanlab's feature-based label check is the same self-excluded k-NN vote: the
    predicted label is the plurality one) with at least ``vote_min`` of the votes (0: the plurality is
    enough) and it is closer to another class centre than to its own leave-one-out centre by more than
    ``-margin_max`` (``margin < margin_max``). ``margin_max`` ``auto`` (default): minus
    ``calibration.margin_ratio`` times the gap between the run's genuine and impostor sample-to-centre
    cosines (``fr_data.mining.calibration.margin_max``); a number overrides it (0.0 was the fixed default
    before calibration). The margin carries precision, so the vote needs no share of its own: a briefly
    trained backbone scatters a mislabelled sample's neighbours over several classes (its true class wins
    with 30-40 % of the votes), which a 50 % share misses.
    """

    vote_min: float = 0.0
    margin_max: float | Auto = AUTO


@dataclass
class DuplicateConfig:
    """Near duplicates: neighbours with cosine >= ``cos``.

    ``auto`` (default): cleanlab's relative rule, ``1 - calibration.duplicate_nn_ratio x`` the run's median
    nearest-neighbour cosine distance. There is no published absolute face-embedding threshold (FiftyOne
    uses 0.1-0.25 distance on mean-centred vectors); 0.95 (the fixed default before calibration) is a
    conservative ArcFace-space value for re-encoded or resized copies of one photo.
    """

    cos: float | Auto = AUTO
    #: with the shards known (``--samples``): a candidate pair (cosine distance at most ``candidate_margin``
    #: x the threshold's) is a duplicate when the grey-level correlation of the two images' 32 x 32
    #: thumbnails is at least ``pixel_min`` (``fr_data.mining.pixel_check``); null: embedding rule only.
    pixel_min: float | None = 0.985
    candidate_margin: float = 2.0


@dataclass
class CalibrationConfig:
    """The stated rates of the ``auto`` thresholds and the flag rates that make a run implausible.

    Attributes:
        duplicate_nn_ratio: duplicates below this share of the median nearest-neighbour cosine distance
            (cleanlab's near-duplicate ``threshold``, 0.13).
        merge_split_quantile: quantile of the split-half centre cosines used as ``classes.merge_cos``.
            0.1: the centre-cosine rule is the precision-first one; the neighbour-mix rule carries recall.
        margin_ratio: ``noise.margin_max`` = minus this share of the gap between the median own-centre
            cosine of the samples whose own label wins their k-NN vote and the mean cosine of a sample to
            another class's centre (0.3; a mislabel's margin is about minus the whole gap).
        warn_merge_share: warn when more than this share of the classes are merge candidates.
        warn_duplicate_share: ... more than this share of the samples are removed as duplicates.
        warn_suspect_share: ... more than this share of the samples are suspected mislabels.
        figure: draw the distributions with their thresholds into ``calibration.png``.
    """

    duplicate_nn_ratio: float = 0.13
    merge_split_quantile: float = 0.1
    margin_ratio: float = 0.3
    warn_merge_share: float = 0.2
    warn_duplicate_share: float = 0.1
    warn_suspect_share: float = 0.2
    figure: bool = True


@dataclass
class QualityConfig:
    """Per-sample quality scores.

    Attributes:
        sdd_samples: positive and negative similarities drawn per round (SDD-FIQA, 24).
        sdd_rounds: rounds averaged after per-round min-max scaling to 0-100 (SDD-FIQA, 12).
        sdd_reference: size of the fixed random reference set of samples the negatives are drawn from.
        cr_eps: epsilon in CR-FIQA's ``CCS / (NNCCS + 1 + eps)``.
        target_fpr: overall FPR that fixes the unified threshold of the instance FPR (CIFP paper 1e-4).
    """

    sdd_samples: int = 24
    sdd_rounds: int = 12
    sdd_reference: int = 256
    cr_eps: float = 1e-9
    target_fpr: float = 1e-4


@dataclass
class DifficultyConfig:
    """Quantile split of the difficulty score into easy / medium / hard.

    Attributes:
        hard_fraction: top share of the eligible samples' difficulty that is ``hard``.
        easy_fraction: bottom share that is ``easy``.
        resolution_weight: weight of the capture term (rank of ``1 - resolution``) against the model
            term's 1 in the difficulty (``fr_data.mining.difficulty``); 0 = model term only.
        quality_weight: weight of the quality-model term (rank of ``-quality``, the embeddings index's
            ``quality`` column written by ``hardmine embed --quality-model``); 0 = off (the default, so
            runs without a quality model are unchanged); > 0 needs that column.
    """

    hard_fraction: float = 0.1
    easy_fraction: float = 0.5
    resolution_weight: float = 1.0
    quality_weight: float = 0.0


@dataclass
class BinConfig:
    """Resolution and pose bins.

    Attributes:
        resolution_edges: edges on the EMB ``resolution`` estimate: ``low`` < e0 <= ``mid`` < e1 <= ``high``
            (the issue counts scale <= 1/4 as hard).
        flip_cos_edges: edges on the flip-consistency proxy: ``profile`` < e0 <= ``half`` < e1 <=
            ``frontal``. No published values: model-dependent, check the bin counts in run.json.
        yaw_edges: edges on |yaw| in degrees when a real head pose column is joined: ``frontal`` < 30
            <= ``half`` < 60 <= ``profile`` (the issue counts |yaw| >= 60 as hard).
        yaw_column: attribute column holding yaw in degrees.
    """

    resolution_edges: list[float] = field(default_factory=lambda: [0.3, 0.6])
    flip_cos_edges: list[float] = field(default_factory=lambda: [0.7, 0.85])
    yaw_edges: list[float] = field(default_factory=lambda: [30.0, 60.0])
    yaw_column: str = "yaw"


@dataclass
class GroupConfig:
    """Demographic or other groups for the bias report.

    Attributes:
        column: attribute column holding the group; ``None`` = the first of ``group``, ``race``,
            ``ethnicity`` present; without one, groups are found by k-means over class centres.
        kmeans_groups: k of the k-means (faiss.Kmeans) fallback.
        kmeans_iter: k-means iterations.
    """

    column: str | None = None
    kmeans_groups: int = 4
    kmeans_iter: int = 20


@dataclass
class PairConfig:
    """How many pairs of each kind to keep per class (bounded output)."""

    easy_pos_per_class: int = 2
    hard_pos_per_class: int = 2
    hard_neg_per_class: int = 2


@dataclass
class SweepConfig:
    """Candidate thresholds whose flag counts are reported in ``sweep.parquet``."""

    merge_cos: list[float] = field(default_factory=lambda: [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8,
                                                              0.9, 0.95, 0.97])
    center_cos: list[float] = field(default_factory=lambda: [0.1, 0.2, round(COS_75_DEGREES, 4), 0.3, 0.4])
    duplicate_cos: list[float] = field(default_factory=lambda: [0.9, 0.93, 0.95, 0.97, 0.98, 0.985, 0.99,
                                                                  0.995, 0.999])
    vote_min: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7, 0.9])
    merge_mix: list[float] = field(default_factory=lambda: [0.4, 0.5, 0.6, 0.7, 0.8, 0.9])


@dataclass
class MiningConfig:
    """Everything ``hardmine mine`` can be told; see ``configs/mining.yaml``."""

    seed: int = 0
    neighbours: NeighbourConfig = field(default_factory=NeighbourConfig)
    classes: ClassConfig = field(default_factory=ClassConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    duplicates: DuplicateConfig = field(default_factory=DuplicateConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    difficulty: DifficultyConfig = field(default_factory=DifficultyConfig)
    bins: BinConfig = field(default_factory=BinConfig)
    groups: GroupConfig = field(default_factory=GroupConfig)
    pairs: PairConfig = field(default_factory=PairConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)


def validate_config(cfg: MiningConfig) -> MiningConfig:
    """Range checks the dataclass types cannot express; raises ConfigError naming the key."""
    checks = [
        ("neighbours.k", cfg.neighbours.k >= 1),
        ("neighbours.candidate_classes", 0 <= cfg.neighbours.candidate_classes <= cfg.neighbours.centre_k),
        ("neighbours.centre_k", cfg.neighbours.centre_k >= 1),
        ("neighbours.chunk_rows", cfg.neighbours.chunk_rows >= 1),
        ("classes.merge_cos", cfg.classes.merge_cos in (None, AUTO) or -1.0 <= cfg.classes.merge_cos <= 1.0),
        ("classes.merge_mix", cfg.classes.merge_mix is None or cfg.classes.merge_mix > 0.0),
        ("noise.vote_min", 0.0 <= cfg.noise.vote_min <= 1.0),
        ("duplicates.cos", cfg.duplicates.cos == AUTO or -1.0 <= cfg.duplicates.cos <= 1.0),
        ("duplicates.pixel_min", cfg.duplicates.pixel_min is None or -1.0 <= cfg.duplicates.pixel_min <= 1.0),
        ("duplicates.candidate_margin", cfg.duplicates.candidate_margin >= 1.0),
        ("calibration.duplicate_nn_ratio", 0.0 < cfg.calibration.duplicate_nn_ratio < 1.0),
        ("calibration.merge_split_quantile", 0.0 <= cfg.calibration.merge_split_quantile <= 1.0),
        ("calibration.margin_ratio", cfg.calibration.margin_ratio >= 0.0),
        *((f"calibration.{k}", 0.0 <= getattr(cfg.calibration, k) <= 1.0)
          for k in ("warn_merge_share", "warn_duplicate_share", "warn_suspect_share")),
        ("quality.sdd_samples", cfg.quality.sdd_samples >= 1),
        ("quality.sdd_rounds", cfg.quality.sdd_rounds >= 1),
        ("quality.sdd_reference", cfg.quality.sdd_reference >= 1),
        ("quality.target_fpr", 0.0 < cfg.quality.target_fpr < 1.0),
        ("difficulty.hard_fraction", 0.0 <= cfg.difficulty.hard_fraction < 1.0),
        ("difficulty.resolution_weight", cfg.difficulty.resolution_weight >= 0.0),
        ("difficulty.quality_weight", cfg.difficulty.quality_weight >= 0.0),
        ("difficulty.easy_fraction",
         0.0 <= cfg.difficulty.easy_fraction <= 1.0 - cfg.difficulty.hard_fraction),
        ("groups.kmeans_groups", cfg.groups.kmeans_groups >= 1),
    ]
    for name in ("resolution_edges", "flip_cos_edges", "yaw_edges"):
        edges = getattr(cfg.bins, name)
        checks.append((f"bins.{name}", len(edges) == 2 and edges[0] <= edges[1]))
    bad = [name for name, ok in checks if not ok]
    if bad:
        raise ConfigError(f"mining config: value out of range for {bad}")
    return cfg


def with_thresholds(cfg: MiningConfig, merge_cos: float | None, duplicate_cos: float,
                    margin_max: float) -> MiningConfig:
    """A copy of ``cfg`` with the thresholds in force (calibrated or overridden) in place of ``auto``."""
    return replace(cfg, classes=replace(cfg.classes, merge_cos=merge_cos),
                   duplicates=replace(cfg.duplicates, cos=duplicate_cos),
                   noise=replace(cfg.noise, margin_max=margin_max))
