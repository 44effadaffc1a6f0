"""Configuration of the training data: which samples (selection), how batches are composed, augmented.

Every dataclass has defaults and is built from YAML through :func:`fr_data.io.config.from_dict` (an unknown
key is a ConfigError). A training config nests :class:`DataConfig` under ``data:``::

    data:
      shards: data/synth/shards
      run: manifests/synth
      batch_size: 128
      selection: {drop_suspects: true, drop_duplicates: true, merge_classes: true, splits: [easy, medium]}
      composer: {enabled: true, identities: 32, pairs: 32,
                 hard: [{source: variation, where: "pose_bin = 'profile'"}]}
      augment: {flip_p: 0.5, lowres_p: 0.2, lowres_scale: [0.25, 0.75], lowres_dist: uniform}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fr_data.io.errors import ConfigError

#: How a downsampling factor is drawn from its ``[min, max]`` range (``fr_train.data.augment.draw_scale``).
ScaleDist = Literal["uniform", "log_uniform"]


@dataclass
class SelectionConfig:
    """Which shard samples train, and how their labels are rewritten (resolved once at start-up).

    Filters apply in this order and each dropped sample is counted under the first reason that hits it:
    ``key_list``, ``query``, ``where``, ``not_in_run`` (a sample the mining run has no row for; only
    when a run folder is given), ``split``, ``suspect``, ``duplicate``, ``review``, ``overlap_class``,
    ``overlap_image``.

    Attributes:
        key_list: a file of keys to keep: text (one key per line) or Parquet with a ``key`` column.
        query: DuckDB SQL over the views ``samples``, ``classes``, ``pairs``, ``shard_samples``
            returning a ``key`` column: the keys to keep.
        where: a SQL predicate over the ``samples`` view (the mining manifest; ``shard_samples`` when
            no run is given), e.g. ``"pose_bin = 'frontal'"``.
        splits: keep only these mining splits (``easy`` / ``medium`` / ``hard``); None keeps all.
        drop_suspects: drop samples with ``suspect_mislabel``.
        drop_duplicates: drop samples whose ``duplicate_of`` is set (the kept twin stays).
        merge_classes: merge ``merge_candidate`` classes into their ``nearest_label`` (transitively).
        review: a ``review.csv`` exported by the review page (``hardmine report``): ``drop`` removes a
            key, ``keep`` lets a key through the mining filters (split, suspect, duplicate),
            ``merge:A:B`` / ``keep:A:B`` merge or separate two labels whatever ``merge_classes`` says
            (see ``fr_data.review.decisions``). Counted in the selection report under ``review``.
        exclude_overlap: an overlap folder (``hardmine overlap``): every sample of a training class that
            overlaps an evaluation identity (``overlap_class``) and every training image leaked into an
            evaluation set (``overlap_image``) is dropped, unless the review's ``overlap`` section keeps
            it (a false match: ``keep`` on its card, see ``fr_data.review.decisions``); counted in the
            selection report under ``overlap``.
        sql_memory_limit: DuckDB memory limit of the selection's queries (``query``, ``where`` and the
            joins with the mining run); a query needing more ends in a ConfigError.
        sql_timeout_s: seconds each of those queries may run.
    """

    key_list: str | None = None
    query: str | None = None
    where: str | None = None
    splits: list[str] | None = None
    drop_suspects: bool = False
    drop_duplicates: bool = False
    merge_classes: bool = False
    review: str | None = None
    exclude_overlap: str | None = None
    sql_memory_limit: str = "4GB"
    sql_timeout_s: float = 300.0


@dataclass
class HardBranchConfig:
    """One hard (student) branch of the DDL/OT composer.

    Attributes:
        source: ``pairs``: positive pairs are the run's ``hard_pos`` pairs; ``variation``: a pair is a
            hard-pool image and an easy-pool image of the same identity (e.g. profile vs frontal).
        where: SQL predicate over ``samples`` defining the hard pool (negatives, and the hard side
            of variation pairs), e.g. ``"split = 'hard'"``, ``"pose_bin = 'profile'"``,
            ``"resolution_bin = 'low'"``.
        pairs_where: extra SQL predicate over ``pairs`` restricting the ``hard_pos`` pairs
            (``source: pairs`` only), e.g. ``"pose_bin_a = 'profile' OR pose_bin_b = 'profile'"``.
    """

    source: Literal["pairs", "variation"] = "pairs"
    where: str = "split = 'hard'"
    pairs_where: str | None = None


@dataclass
class ComposerConfig:
    """The DDL/OT batch composer: an easy (teacher) branch and hard (student) branches per step.

    Attributes:
        enabled: attach ``branches`` to every batch.
        identities: negatives per branch, one image per identity (distinct identities).
        pairs: positive pairs per branch.
        easy_where: SQL predicate over ``samples`` defining the easy pool (negatives of branch 0 and
            the easy side of variation pairs).
        easy_pairs_where: extra SQL predicate over ``pairs`` restricting the ``easy_pos`` pairs.
        hard: the hard branches (branch 1, 2, ...).
        flip: randomly mirror branch images (resolution loss is never applied to branches).
    """

    enabled: bool = False
    identities: int = 32
    pairs: int = 32
    easy_where: str = "split = 'easy'"
    easy_pairs_where: str | None = None
    hard: list[HardBranchConfig] = field(default_factory=lambda: [HardBranchConfig()])
    flip: bool = True


@dataclass
class AugmentConfig:
    """Per-sample augmentation of the classification batch.

    Attributes:
        flip_p: probability of a horizontal flip.
        lowres_p: probability of a resolution loss (downsample by a random factor, upsample back).
        lowres_scale: range ``[min, max]`` of the downsampling factor (side ratio, in (0, 1]).
        lowres_dist: how the factor is drawn from that range, continuously: ``uniform`` in the factor or
            ``log_uniform`` (uniform in its logarithm: every octave of shrink equally likely).
    """

    flip_p: float = 0.5
    lowres_p: float = 0.0
    lowres_scale: list[float] = field(default_factory=lambda: [0.25, 1.0])
    lowres_dist: ScaleDist = "uniform"


@dataclass
class DataConfig:
    """Training data: shards, the mining run that selects from them, batching and augmentation.

    Attributes:
        shards: the shard folder (``samples.parquet``, ``shards.json``, ``shard-*.tar``).
        run: a mining run folder (``samples/classes/pairs.parquet``); needed by the mining filters
            and the composer.
        selection / composer / augment: see their classes.
        batch_size: classification samples per batch per rank.
        num_workers: DataLoader worker processes per rank (0: read in the training process).
        epoch_samples: samples per epoch over all ranks (default: the selected count).
        seed: seeds shard order, shuffle, augmentation and the composer (with epoch, rank, step).
        image_size: output image side (InsightFace crops: 112).
        shuffle: shuffle shard order and samples (off: file order, for debugging).
        buffer: shuffle-window size in samples (samples are permuted within windows of this many
            neighbouring samples of the epoch's shard sequence).
        pin_memory: pin batches for faster host-to-GPU copies.
    """

    shards: str = ""
    run: str | None = None
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    composer: ComposerConfig = field(default_factory=ComposerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 128
    num_workers: int = 2
    epoch_samples: int | None = None
    seed: int = 0
    image_size: int = 112
    shuffle: bool = True
    buffer: int = 1000
    pin_memory: bool = False


def validate_data_config(cfg: DataConfig) -> None:
    """Check value ranges the types cannot express.

    Raises:
        ConfigError: naming the key and the bad value.
    """
    checks = [
        (bool(cfg.shards), "data.shards must name the shard folder"),
        (cfg.batch_size >= 1, f"data.batch_size must be >= 1, got {cfg.batch_size}"),
        (cfg.num_workers >= 0, f"data.num_workers must be >= 0, got {cfg.num_workers}"),
        (cfg.epoch_samples is None or cfg.epoch_samples >= 1,
         f"data.epoch_samples must be >= 1, got {cfg.epoch_samples}"),
        (cfg.image_size >= 8, f"data.image_size must be >= 8, got {cfg.image_size}"),
        (cfg.buffer >= 0, f"data.buffer must be >= 0, got {cfg.buffer}"),
        (0.0 <= cfg.augment.flip_p <= 1.0,
         f"data.augment.flip_p must be in [0, 1], got {cfg.augment.flip_p}"),
        (0.0 <= cfg.augment.lowres_p <= 1.0,
         f"data.augment.lowres_p must be in [0, 1], got {cfg.augment.lowres_p}"),
        (_scale_ok(cfg.augment.lowres_scale),
         "data.augment.lowres_scale must be [min, max] with 0 < min <= max <= 1, "
         f"got {cfg.augment.lowres_scale}"),
        (cfg.selection.sql_timeout_s > 0,
         f"data.selection.sql_timeout_s must be > 0, got {cfg.selection.sql_timeout_s}"),
        (cfg.composer.identities >= 2,
         f"data.composer.identities must be >= 2, got {cfg.composer.identities}"),
        (cfg.composer.pairs >= 1, f"data.composer.pairs must be >= 1, got {cfg.composer.pairs}"),
        (not cfg.composer.enabled or cfg.run is not None,
         "data.composer needs data.run (a mining run folder)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _scale_ok(scale: list[float]) -> bool:
    return len(scale) == 2 and 0.0 < scale[0] <= scale[1] <= 1.0
