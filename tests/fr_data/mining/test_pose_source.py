"""Which yaw the pose bins use: a joined ``yaw`` attribute, else the embeddings index's landmark estimate
(``embed --pose``), else the ``flip_cos`` proxy; ``run.json: bins.pose_source`` says which."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.mining import mine
from tests.fr_data.mining.planted import PlantedSpec, brute_knn, make_planted, write_emb


def _planted(tmp_path, landmark_yaw=None):
    x, truth = make_planted(PlantedSpec(identities=12, per_identity=(4, 6), split_identities=1,
                                        lookalike_pairs=1))
    folder = write_emb(tmp_path / "emb", x, truth)
    if landmark_yaw is not None:
        index = pq.read_table(folder / "index.parquet")
        yaw = landmark_yaw(len(truth.labels))
        index = index.append_column("yaw", pa.array(yaw, pa.float32(), from_pandas=True))
        index = index.append_column("roll", pa.array(np.zeros(len(yaw)), pa.float32()))
        pq.write_table(index, folder / "index.parquet")
    return folder, truth


def _cycle(n):
    """|yaw| 0, 45, 75 degrees in turn (signs alternate), so every bin is hand-checkable."""
    return np.array([(0.0, -45.0, 75.0, 0.0, 45.0, -75.0)[i % 6] for i in range(n)])


def test_landmark_yaw_of_the_index_sets_the_pose_bins(tmp_path):
    folder, _ = _planted(tmp_path, _cycle)
    res = mine(folder, tmp_path / "RUN", knn=brute_knn)
    assert res.run["bins"]["pose_source"] == "landmarks"
    bins = pq.read_table(res.folder / "samples.parquet").column("pose_bin").to_pylist()
    expected = {0.0: "frontal", 45.0: "half", 75.0: "profile"}
    assert bins == [expected[abs(v)] for v in _cycle(len(bins))]


def test_a_missing_landmark_estimate_gives_no_pose_bin(tmp_path):
    def with_gap(n):
        yaw = _cycle(n)
        yaw[1] = np.nan
        return yaw
    folder, _ = _planted(tmp_path, with_gap)
    res = mine(folder, tmp_path / "RUN", knn=brute_knn)
    bins = pq.read_table(res.folder / "samples.parquet").column("pose_bin").to_pylist()
    assert bins[1] is None and bins[0] == "frontal"


def test_a_yaw_attribute_wins_over_the_landmark_estimate(tmp_path):
    folder, truth = _planted(tmp_path, _cycle)
    attr = tmp_path / "attributes.parquet"
    yaw = pa.array(np.full(len(truth.keys), 80.0), pa.float32())
    pq.write_table(pa.table({"key": truth.keys, "yaw": yaw}), attr)
    res = mine(folder, tmp_path / "RUN", attributes=attr, knn=brute_knn)
    assert res.run["bins"]["pose_source"] == "attribute"
    bins = pq.read_table(res.folder / "samples.parquet").column("pose_bin").to_pylist()
    assert set(bins) == {"profile"}


def test_without_any_yaw_the_bins_fall_back_to_flip_cos(tmp_path):
    folder, truth = _planted(tmp_path)
    res = mine(folder, tmp_path / "RUN", knn=brute_knn)
    assert res.run["bins"]["pose_source"] == "flip_cos"
    bins = pq.read_table(res.folder / "samples.parquet").column("pose_bin").to_pylist()
    assert bins[0] == ("frontal" if truth.flip_cos[0] >= 0.85 else "half" if truth.flip_cos[0] >= 0.7
                       else "profile")
