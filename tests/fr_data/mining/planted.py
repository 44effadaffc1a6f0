"""Synthetic embeddings with planted structure and known truth, for mining tests and the benchmark.

Model of an embedding (then L2-normalised)::

    x = mu_identity + sigma * eps + beta_q * d_lowres + beta_p * d_pose(sign yaw) + gamma * mu_confuser

* identity centres ``mu`` on the unit sphere, built from a few group directions (identities of one
  group are closer to each other, like same-demographic faces) plus look-alike pairs;
* per-sample noise ``sigma`` grows with the planted degradation: low resolution (scale 1/4, 1/8) and
  large |yaw| push the sample along shared degradation directions, so hard samples of different people
  drift towards each other, as real low-quality faces do;
* every sample is pulled towards a random same-group "confuser" identity in proportion to its
  degradation (a blurred or profile face resembles other people more), and a few samples, degraded or
  not, strongly so (ambiguous but correctly labelled: false-positive pressure on mislabel detection);
* planted faults: mislabels (relabelled to another identity of the same group), near-duplicates
  (re-encoded copies, some filed under another label), bursts (distinct but very similar photos of one
  person: not duplicates), and split identities (one person under two labels: merge candidates).

Truly hard = |yaw| >= 60 or scale <= 1/4 (the issue's definition).

**Geometries** (``GEOMETRIES``, :func:`geometry_spec`): backbones differ in how tight they keep a person's
images (``noise_scale`` multiplies every within-identity offset: noise, degradation shifts, confuser
pulls, and the perturbation of copies and bursts, since a backbone that maps different photos of one person
closer also maps re-encoded copies closer), how close look-alike identities sit
(``lookalike_pull``) and where the cosine scale sits (``cone``: every vector gets a shared component of that
weight before normalising, so all cosines crowd towards 1, as with a small or briefly trained backbone).
The default spec is the ``base`` geometry (unchanged vectors).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCALES = np.array([1.0, 0.5, 0.25, 0.125])
SCALE_SEVERITY = np.array([0.0, 0.15, 0.9, 1.3])


@dataclass
class PlantedSpec:
    """Sizes and fault rates of a planted data set."""

    identities: int = 150
    per_identity: tuple[int, int] = (8, 30)
    dim: int = 128
    groups: int = 4
    mislabel_rate: float = 0.05
    duplicate_rate: float = 0.02
    cross_class_duplicate_share: float = 0.3
    burst_rate: float = 0.02
    confuser_rate: float = 0.04
    severity_pull: float = 0.35
    split_identities: int = 8
    lookalike_pairs: int = 10
    scale_probs: tuple[float, ...] = (0.6, 0.3, 0.07, 0.03)
    yaw_sd: float = 28.0
    noise_scale: float = 1.0
    lookalike_pull: float = 0.35
    cone: float = 0.0
    seed: int = 0


#: Three backbone geometries for the calibration goal (see the module docstring).
#: ``base``: the default planted set; ``tight``: a well-trained backbone (tight classes, look-alikes
#: closer); ``cone``: a small backbone (loose classes, every cosine crowded towards 1: class centres at
#: 0.8-0.99, as with the demo's tiny backbone).
GEOMETRIES: dict[str, dict[str, float]] = {
    "base": {},
    "tight": {"noise_scale": 0.6, "lookalike_pull": 0.6},
    "cone": {"noise_scale": 1.15, "lookalike_pull": 0.5, "cone": 2.0},
}


def geometry_spec(name: str, **overrides) -> PlantedSpec:
    """The planted spec of geometry ``name`` (``GEOMETRIES``), other fields from ``overrides``."""
    return PlantedSpec(**{**GEOMETRIES[name], **overrides})


@dataclass
class Truth:
    """Per-row truth (row i = embedding row i) and the planted class-level facts."""

    labels: np.ndarray
    identity: np.ndarray
    mislabeled: np.ndarray
    duplicate_of: np.ndarray
    burst_of: np.ndarray
    hard: np.ndarray
    yaw: np.ndarray
    scale: np.ndarray
    flip_cos: np.ndarray
    resolution: np.ndarray
    group: np.ndarray
    split_pairs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [f"s{i:08d}" for i in range(len(self.labels))]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def identity_centres(spec: PlantedSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unit centres (identities x dim) and the group of each identity; look-alike pairs at cos ~0.4."""
    g_dir = _unit(rng.standard_normal((spec.groups, spec.dim)))
    group = rng.integers(0, spec.groups, spec.identities)
    mu = _unit(0.5 * g_dir[group] + _unit(rng.standard_normal((spec.identities, spec.dim))))
    pairs = rng.choice(spec.identities, size=(spec.lookalike_pairs, 2), replace=False) \
        if 2 * spec.lookalike_pairs <= spec.identities else np.zeros((0, 2), int)
    for a, b in pairs:
        mu[b] = _unit(spec.lookalike_pull * mu[a] + 0.85 * mu[b])
    return mu.astype(np.float32), group


def _degradation(spec: PlantedSpec, n: int, rng: np.random.Generator):
    scale_idx = rng.choice(len(SCALES), size=n, p=np.asarray(spec.scale_probs) / sum(spec.scale_probs))
    yaw = np.clip(rng.normal(0.0, spec.yaw_sd, n), -90, 90).astype(np.float32)
    q = SCALE_SEVERITY[scale_idx]
    p = 1.3 * (np.abs(yaw) / 90.0) ** 2
    return SCALES[scale_idx].astype(np.float32), yaw, q, p


def sample_vectors(mu: np.ndarray, ident: np.ndarray, q: np.ndarray, p: np.ndarray, yaw: np.ndarray,
                   confuser: np.ndarray, gamma: np.ndarray, dirs: np.ndarray,
                   rng: np.random.Generator, noise_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors for samples of identities ``ident`` with severities q (resolution), p (pose), and
    each sample's ``stretch``: how much longer a within-identity offset of the same raw size comes out
    on the unit sphere than at ``noise_scale`` 1 (1 there), so copies scale like the class's own spread."""
    n, d = len(ident), mu.shape[1]
    sigma = (0.75 + 0.5 * q + 0.5 * p)[:, None]
    eps = rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    pose_dir = np.where((yaw >= 0)[:, None], dirs[1], dirs[2])
    offset = sigma * eps + (0.6 * q)[:, None] * dirs[0] + (0.6 * p)[:, None] * pose_dir
    offset += gamma[:, None] * mu[np.maximum(confuser, 0)]
    if noise_scale == 1.0:
        return _unit(mu[ident] + offset).astype(np.float32), np.ones(n, np.float32)
    x = mu[ident] + noise_scale * offset
    stretch = noise_scale * np.linalg.norm(mu[ident] + offset, axis=1) / np.linalg.norm(x, axis=1)
    return _unit(x).astype(np.float32), stretch.astype(np.float32)


def _copies(x: np.ndarray, tau_lo: float, tau_hi: float, rng: np.random.Generator,
            stretch: np.ndarray | None = None) -> np.ndarray:
    tau = rng.uniform(tau_lo, tau_hi, size=(len(x), 1))
    tau = tau if stretch is None else tau * stretch[:, None]
    return _unit(x + tau * rng.standard_normal(x.shape).astype(np.float32) / np.sqrt(x.shape[1]))


def _relabel_same_group(ident: np.ndarray, group: np.ndarray, n_ids: int,
                        rng: np.random.Generator) -> np.ndarray:
    """A random other identity of the same group for each entry (any other if the group is alone)."""
    out = np.empty_like(ident)
    for i, t in enumerate(ident):
        pool = np.flatnonzero((group == group[t]) & (np.arange(n_ids) != t))
        out[i] = rng.choice(pool) if len(pool) else (t + 1) % n_ids
    return out


def make_planted(spec: PlantedSpec = PlantedSpec()) -> tuple[np.ndarray, Truth]:
    """Build vectors (N x dim, float32 unit rows) and the truth, fully in memory."""
    rng = np.random.default_rng(spec.seed)
    mu, group = identity_centres(spec, rng)
    dirs = _unit(rng.standard_normal((3, spec.dim))).astype(np.float32)
    sizes = rng.integers(spec.per_identity[0], spec.per_identity[1] + 1, spec.identities)
    ident = np.repeat(np.arange(spec.identities), sizes)
    n = len(ident)
    scale, yaw, q, p = _degradation(spec, n, rng)
    confused = rng.random(n) < spec.confuser_rate
    confuser = _relabel_same_group(ident, group, spec.identities, rng)
    gamma = np.where(confused, rng.uniform(0.2, 0.7, n), 0.0) + spec.severity_pull * (q + p)
    gamma = gamma.astype(np.float32)
    x, stretch = sample_vectors(mu, ident, q, p, yaw, confuser, gamma, dirs, rng, spec.noise_scale)
    labels = ident.copy()
    split_pairs = _split_identities(spec, labels, ident, rng)
    mislabeled = rng.random(n) < spec.mislabel_rate
    labels[mislabeled] = _relabel_same_group(ident[mislabeled], group, spec.identities, rng)
    labels[mislabeled & (labels == ident)] = (ident[mislabeled & (labels == ident)] + 1) % spec.identities
    base = Truth(labels, ident, mislabeled, np.full(n, -1), np.full(n, -1), _is_hard(yaw, scale), yaw, scale,
                 *_proxies(yaw, scale, rng), group[ident], split_pairs)
    return _add_copies(x, base, spec, group, rng, stretch)


def _split_identities(spec: PlantedSpec, labels: np.ndarray, ident: np.ndarray,
                      rng: np.random.Generator) -> list[tuple[int, int]]:
    """Relabel the second half of some identities as a new label (one person, two labels)."""
    pairs = []
    for j, t in enumerate(rng.choice(spec.identities, spec.split_identities, replace=False)):
        rows = np.flatnonzero(ident == t)
        labels[rows[len(rows) // 2:]] = spec.identities + j
        pairs.append((int(t), spec.identities + j))
    return pairs


def _is_hard(yaw: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.abs(yaw) >= 60) | (scale <= 0.25)


def _proxies(yaw: np.ndarray, scale: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noisy flip-consistency and resolution estimates, like the embed step would produce."""
    flip = 0.95 - 0.4 * (np.abs(yaw) / 90.0) ** 1.5 + rng.normal(0, 0.03, len(yaw))
    res = np.clip(scale * (1 + rng.normal(0, 0.1, len(scale))), 0.01, 1.0)
    return flip.astype(np.float32), res.astype(np.float32)


def _add_copies(x: np.ndarray, t: Truth, spec: PlantedSpec, group: np.ndarray,
                rng: np.random.Generator, stretch: np.ndarray) -> tuple[np.ndarray, Truth]:
    """Append near-duplicates (some under another label) and bursts after the originals."""
    n = len(x)
    dup_src = np.flatnonzero(rng.random(n) < spec.duplicate_rate)
    burst_src = np.flatnonzero(rng.random(n) < spec.burst_rate)
    same = spec.noise_scale == 1.0
    dup_x = _copies(x[dup_src], 0.08, 0.28, rng, None if same else stretch[dup_src])
    burst_x = _copies(x[burst_src], 0.35, 0.6, rng, None if same else stretch[burst_src])
    src = np.concatenate([dup_src, burst_src])
    new_labels = t.labels[src].copy()
    cross = np.zeros(len(src), bool)
    cross[:len(dup_src)] = rng.random(len(dup_src)) < spec.cross_class_duplicate_share
    new_labels[cross] = _relabel_same_group(t.identity[src[cross]], group, spec.identities, rng)
    dup_of = np.concatenate([t.duplicate_of, dup_src, np.full(len(burst_src), -1)])
    burst_of = np.concatenate([t.burst_of, np.full(len(dup_src), -1), burst_src])

    def cat(a):
        return np.concatenate([a, a[src]])

    truth = Truth(np.concatenate([t.labels, new_labels]), cat(t.identity),
                  np.concatenate([t.mislabeled, t.mislabeled[src] | (new_labels != t.labels[src])]),
                  dup_of, burst_of, cat(t.hard), cat(t.yaw), cat(t.scale), cat(t.flip_cos),
                  cat(t.resolution), cat(t.group), t.split_pairs)
    truth.mislabeled = truth.labels != _true_label(truth)
    return _in_cone(np.concatenate([x, dup_x, burst_x]), spec.cone, rng), truth


def _in_cone(x: np.ndarray, cone: float, rng: np.random.Generator) -> np.ndarray:
    """Add a shared random direction of weight ``cone`` and re-normalise (0: unchanged, no draw)."""
    if cone == 0:
        return x.astype(np.float32)
    common = _unit(rng.standard_normal(x.shape[1])).astype(np.float32)
    return _unit(x + cone * common).astype(np.float32)


def _true_label(t: Truth) -> np.ndarray:
    """The label an identity's samples should carry (split identities: either of their two labels)."""
    true = t.identity.copy()
    for a, b in t.split_pairs:
        true[(t.identity == a) & (t.labels == b)] = b
    return true


def write_emb(folder: Path, x: np.ndarray, truth: Truth, dtype=np.float16,
              run_info: dict | None = None) -> Path:
    """Write an EMB folder (embeddings.npy, index.parquet, run.json) for these vectors."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "embeddings.npy", x.astype(dtype))
    index = pa.table({"key": truth.keys, "label": pa.array(truth.labels, pa.int64()),
                      "norm": pa.array(np.full(len(x), 20.0, np.float32)),
                      "flip_cos": pa.array(truth.flip_cos, pa.float32()),
                      "resolution": pa.array(truth.resolution, pa.float32())})
    pq.write_table(index, folder / "index.parquet")
    info = {"model": {"name": "planted", "dim": int(x.shape[1])}, "count": len(x)}
    (folder / "run.json").write_text(json.dumps(run_info if run_info is not None else info))
    return folder


def brute_knn(queries: np.ndarray, database: np.ndarray, k: int, *, exclude_self: bool = False):
    """Reference exact inner-product top-k in numpy (ties: smaller id first)."""
    q = np.asarray(queries, dtype=np.float64)
    s = q @ np.asarray(database, dtype=np.float64).T
    if exclude_self:
        np.fill_diagonal(s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    sims = np.take_along_axis(s, order, 1).astype(np.float32)
    return SimpleNamespace(sims=sims, ids=order.astype(np.int64))


def write_planted_stream(folder: Path, spec: PlantedSpec, blocks: int) -> tuple[int, int]:
    """Write a large EMB folder block by block (each block an independent planted set of
    ``spec.identities`` identities with its own labels), never holding more than one block in RAM.

    Returns (rows, labels). Truth is not kept: this is for benchmarks.
    """
    folder.mkdir(parents=True, exist_ok=True)
    raw_path = folder / "embeddings.raw"
    label_stride = spec.identities + spec.split_identities
    labels, flips, res, rows = [], [], [], 0
    with open(raw_path, "wb") as raw:
        for b in range(blocks):
            x, truth = make_planted(PlantedSpec(**{**spec.__dict__, "seed": spec.seed * 100_003 + b}))
            raw.write(x.astype(np.float16).tobytes())
            labels.append(truth.labels + b * label_stride)
            flips.append(truth.flip_cos)
            res.append(truth.resolution)
            rows += len(x)
    _raw_to_npy(raw_path, folder / "embeddings.npy", (rows, spec.dim))
    index = pa.table({"key": [f"s{i:09d}" for i in range(rows)],
                      "label": pa.array(np.concatenate(labels), pa.int64()),
                      "norm": pa.array(np.full(rows, 20.0, np.float32)),
                      "flip_cos": pa.array(np.concatenate(flips), pa.float32()),
                      "resolution": pa.array(np.concatenate(res), pa.float32())})
    pq.write_table(index, folder / "index.parquet")
    (folder / "run.json").write_text(json.dumps({"spec": {"name": "planted-stream", "blocks": blocks}}))
    return rows, len(np.unique(index.column("label").to_numpy()))


def _raw_to_npy(raw_path: Path, npy_path: Path, shape: tuple[int, int]) -> None:
    """Prefix a raw float16 C-order file with an .npy header (streamed copy)."""
    import shutil

    with open(npy_path, "wb") as out, open(raw_path, "rb") as raw:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False,
                  "shape": shape}
        np.lib.format.write_array_header_1_0(out, header)
        shutil.copyfileobj(raw, out, 1 << 24)
    raw_path.unlink()
