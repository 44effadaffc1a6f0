"""The mining signals: every column of a run folder's ``samples``, ``classes`` and ``pairs`` tables, each
declared once.

A :class:`Signal` is one finding of a mining run and declares its own columns: name, Arrow type,
nullability and a one-line meaning, plus the table it belongs to and the mining stage that produces it
(the stage names of ``run.json: timings``). The schemas of :mod:`fr_data.folders.run_folder` are built
from :data:`SIGNALS`, in declaration order (which is the column order of the files: append, never
reorder); ``fr_data.mining.tables`` fills the columns of every signal it computes from the stage results
(a test checks the two agree), and the column tables of ``manifests/README.md`` are checked against these
declarations (``tests/fr_data/folders/test_run_signals.py``), where the longer explanations live.

A signal marked ``optional`` may be absent from a table file: readers accept files without it (files
written before it existed, or runs without its input) and check it like the others when it is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

#: The stages of a mining run (``fr_data.mining.run``), in order; a signal names the one producing it.
STAGES = ("open", "centres", "centre_search", "class_pass", "finalise", "tables")
#: The run tables whose columns are signals.
TABLES = ("samples", "classes", "pairs")


@dataclass(frozen=True)
class Column:
    """One column: its name, Arrow type, whether it may hold nulls, and what it means (one line)."""

    name: str
    type: pa.DataType
    meaning: str
    nullable: bool = True

    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable)


@dataclass(frozen=True)
class Signal:
    """A mining finding: the columns it adds to ``table``, produced by mining stage ``stage``."""

    name: str
    table: str
    stage: str
    columns: tuple[Column, ...]
    optional: bool = False

    def __post_init__(self) -> None:
        if self.table not in TABLES or self.stage not in STAGES:
            raise ValueError(f"signal {self.name!r}: table {self.table!r} / stage {self.stage!r} unknown")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _c(name: str, type_: pa.DataType, meaning: str, nullable: bool = True) -> Column:
    return Column(name, type_, meaning, nullable)


F32, I64, STR, BOOL = pa.float32(), pa.int64(), pa.string(), pa.bool_()

SIGNALS: tuple[Signal, ...] = (
    # ------------------------------------------------------------------------------------- samples.parquet
    Signal("identity", "samples", "open", (
        _c("key", STR, "sample key, as in the shards and EMB/index.parquet", False),
        _c("label", I64, "label as stored", False))),
    Signal("vector_ok", "samples", "centres", (
        _c("vector_ok", BOOL, "false for NaN/inf or zero embeddings (their mined columns are null)", False),)),
    Signal("center_cos", "samples", "centre_search", (
        _c("center_cos", F32, "leave-one-out cosine to the own class centre"),)),
    Signal("nearest_other", "samples", "centre_search", (
        _c("nearest_other_label", I64, "label of the nearest other class centre"),
        _c("nearest_other_cos", F32, "cosine to that centre"))),
    Signal("margin", "samples", "finalise", (
        _c("margin", F32, "center_cos - nearest_other_cos (negative: closer to another identity)"),)),
    Signal("knn_agreement", "samples", "finalise", (
        _c("knn_agreement", F32, "share of the k nearest samples carrying the same label"),)),
    Signal("suspects", "samples", "finalise", (
        _c("suspect_mislabel", BOOL, "another label wins the k-NN vote and the margin is small", False),
        _c("suspected_label", I64, "the winning label of a suspect"))),
    Signal("duplicates", "samples", "finalise", (
        _c("duplicate_of", STR, "key of the kept twin of a near-duplicate"),
        _c("duplicate_kind", STR, "same_class or cross_class"),
        _c("duplicate_cos", F32, "cosine to the kept twin"))),
    Signal("quality_sdd", "samples", "finalise", (
        _c("quality_sdd", F32, "SDD-FIQA pseudo-label, 0-100, higher = better"),)),
    Signal("quality_cr", "samples", "finalise", (
        _c("quality_cr", F32, "CR-FIQA certainty ratio, higher = better"),)),
    Signal("instance_fpr", "samples", "finalise", (
        _c("instance_fpr", F32, "share of the sample's negatives above the unified threshold"),)),
    Signal("difficulty", "samples", "finalise", (
        _c("difficulty", F32, "0-1, higher = harder (percentile ranks of quality and resolution)"),
        _c("split", STR, "easy / medium / hard by difficulty over eligible samples"))),
    Signal("resolution", "samples", "tables", (
        _c("resolution", F32, "effective-resolution estimate from EMB/index.parquet"),
        _c("resolution_bin", STR, "low / mid / high by bins.resolution_edges"))),
    Signal("pose", "samples", "tables", (
        _c("flip_cos", F32, "cosine of the embeddings of the image and its mirror, a pose proxy"),
        _c("pose_bin", STR, "frontal / half / profile from |yaw| or flip_cos"))),
    Signal("group", "samples", "tables", (
        _c("group", STR, "group of the bias report (attribute column or k-means cluster)"),)),
    Signal("quality", "samples", "tables", (
        _c("quality", F32, "quality-model score carried over from EMB/index.parquet, higher = better"),),
        optional=True),
    Signal("nn_cos", "samples", "finalise", (
        _c("nn_cos", F32, "cosine to the nearest other sample of the k-NN graph (any label)"),),
        optional=True),
    Signal("duplicate_pixel_sim", "samples", "finalise", (
        _c("duplicate_pixel_sim", F32, "best grey-level correlation with a near-duplicate candidate (null: not checked)"),),
        optional=True),
    Signal("provenance", "samples", "tables", (
        _c("source_path", STR, "the image's file in the source (identity/file, or train.rec#KEY); from --samples"),
        _c("identity", STR, "identity folder name, or the RecordIO label as text; from --samples")),
        optional=True),
    # ------------------------------------------------------------------------------------- classes.parquet
    Signal("class_counts", "classes", "centres", (
        _c("label", I64, "the label", False),
        _c("n", I64, "samples with a valid vector", False),
        _c("n_invalid", I64, "samples with NaN/zero vectors", False),
        _c("spread", F32, "mean cosine of the class's samples to its centre"))),
    Signal("nearest_class", "classes", "centre_search", (
        _c("nearest_label", I64, "label of the nearest other class centre"),
        _c("nearest_cos", F32, "centre-to-centre cosine to it"))),
    Signal("merges", "classes", "finalise", (
        _c("neighbour_mix", F32, "k-NN votes crossing between this label and nearest_label, over the expected"),
        _c("merge_candidate", BOOL, "probably the same person as nearest_label", False))),
    Signal("class_group", "classes", "tables", (
        _c("group", STR, "the most common group of its samples (a tie: the one of its first row)"),)),
    Signal("class_identity", "classes", "tables", (
        _c("identity", STR, "identity folder name of the label (RecordIO: the label as text); from --samples"),),
        optional=True),
    # --------------------------------------------------------------------------------------- pairs.parquet
    Signal("pairs", "pairs", "finalise", (
        _c("key_a", STR, "first sample", False),
        _c("key_b", STR, "second sample", False),
        _c("label_a", I64, "its label", False),
        _c("label_b", I64, "its label", False),
        _c("cos", F32, "their cosine", False),
        _c("kind", STR, "easy_pos, hard_pos or hard_neg", False))),
    Signal("pair_bins", "pairs", "tables", (
        _c("pose_bin_a", STR, "pose bin of key_a"),
        _c("pose_bin_b", STR, "pose bin of key_b"),
        _c("resolution_bin_a", STR, "resolution bin of key_a"),
        _c("resolution_bin_b", STR, "resolution bin of key_b"))),
)


def signals_of(table: str, *, optional: bool | None = None) -> Iterator[Signal]:
    """The signals of ``table`` in declaration order (only the optional ones, or only the others, when
    ``optional`` is given)."""
    for s in SIGNALS:
        if s.table == table and (optional is None or s.optional == optional):
            yield s


def schema(table: str, *, optional: bool = False) -> pa.Schema:
    """The schema of ``table``'s required columns (or, with ``optional``, of its optional ones)."""
    return pa.schema([c.field() for s in signals_of(table, optional=optional) for c in s.columns])


def columns(table: str) -> dict[str, Column]:
    """Every declared column of ``table`` (required and optional) by name, in declaration order."""
    return {c.name: c for s in signals_of(table) for c in s.columns}
