"""The inputs the trainer provides for declared needs: one backbone pass, the low-resolution copy, the
frozen teacher, composer branches, the mining run's per-sample targets, and only the providers an objective
needs."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from fr_data.io.errors import ConfigError, DataError
from fr_train.data import ImageBatch
from fr_train.models import get_model
from fr_train.objective import Need, objective_config
from fr_train.objective.inputs import (BranchFeatures, Inputs, LowResFeatures, RunTargets, TeacherFeatures,
                                       build_inputs)
from fr_train.objective.kd import FrozenTeacher, LowResCopy
from tests.fr_train.helpers import Identity, pixels


class _Counting(nn.Module):
    """``Identity`` that records the size of every pass."""

    def __init__(self):
        super().__init__()
        self.inner, self.passes = Identity(), []

    def forward(self, x):
        self.passes.append(len(x))
        return self.inner(x)


def _batch() -> ImageBatch:
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return ImageBatch(images, torch.tensor([0, 1, 2, 3]), ["a", "b", "c", "d"])


def test_lowres_copy_is_embedded_in_the_same_pass():
    batch, backbone = _batch(), _Counting()
    inputs = Inputs([LowResFeatures(LowResCopy((0.25, 0.5), torch.Generator().manual_seed(5)))])
    out = inputs.features(backbone, batch)
    assert backbone.passes == [8]  # 4 images + their 4 low-resolution copies, one pass
    assert inputs.last_images == 8  # what the trainer adds to images_seen
    expected = LowResCopy((0.25, 0.5), torch.Generator().manual_seed(5))(batch.images)[:, :, 0, 0]
    torch.testing.assert_close(out.lowres_embeddings, expected, rtol=0, atol=0)
    torch.testing.assert_close(out.embeddings, batch.images[:, :, 0, 0], rtol=0, atol=0)
    assert out.teacher_embeddings is None and out.neg_branches is None
    assert set(inputs.generators) == {"lowres"}


def test_teacher_embeds_the_classification_images_without_gradient():
    batch, backbone = _batch(), _Counting()
    teacher_net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    inputs = Inputs([TeacherFeatures(FrozenTeacher(teacher_net))])
    out = inputs.features(backbone, batch)
    assert backbone.passes == [4] and not out.teacher_embeddings.requires_grad
    assert inputs.last_images == 4  # the frozen teacher's pass is not the student's compute
    torch.testing.assert_close(out.teacher_embeddings, teacher_net(batch.images).detach())


def test_branches_need_a_batch_with_branches():
    with pytest.raises(ValueError, match="composer branches"):
        Inputs([BranchFeatures()]).features(Identity(), _batch())


def test_build_inputs_makes_exactly_the_needed_providers(tmp_path):
    cfg = objective_config({"lowres_scale": [0.5, 0.5]})
    assert build_inputs(cfg, set()).provided == frozenset()
    inputs = build_inputs(cfg, {Need.LOWRES, Need.BRANCHES}, seed=3)
    assert [p.need for p in inputs.providers] == [Need.BRANCHES, Need.LOWRES]  # the order of the pass
    torch.testing.assert_close(inputs.generators["lowres"].get_state(),
                               torch.Generator().manual_seed(3).get_state())
    with pytest.raises(ConfigError, match="objective.teacher"):
        build_inputs(cfg, {Need.TEACHER})
    torch.save(get_model("tiny", embedding_size=8).state_dict(), tmp_path / "t.pt")
    teacher_cfg = objective_config({"teacher": {"name": "tiny", "embedding_size": 8,
                                                "weights": str(tmp_path / "t.pt")}})
    (provider,) = build_inputs(teacher_cfg, {Need.TEACHER}).providers
    assert isinstance(provider, TeacherFeatures) and not provider.teacher.backbone.training


def test_one_provider_per_need():
    with pytest.raises(ValueError, match="one provider per need"):
        Inputs([BranchFeatures(), BranchFeatures()])
    assert pixels([1.0]).shape == (1, 3, 2, 2)


def _run_with_targets(tmp_path, values: dict[str, float | None], column: str = "quality_sdd"):
    """A run folder whose samples.parquet holds only what the targets need (``key``, ``label``, ``column``)."""
    run = tmp_path / "run"
    run.mkdir()
    table = pa.table({"key": list(values), "label": [0] * len(values),
                      column: pa.array(list(values.values()), pa.float32())})
    pq.write_table(table, run / "samples.parquet")
    return run


def test_targets_come_from_the_run_by_key_with_nan_for_unknown_keys(tmp_path):
    run = _run_with_targets(tmp_path, {"b": 2.0, "a": 1.0, "c": None})
    (provider,) = build_inputs(objective_config({}), {Need.TARGETS}, run=run).providers
    assert isinstance(provider, RunTargets)
    batch = ImageBatch(pixels([0.0, 0.0, 0.0, 0.0]), torch.zeros(4, dtype=torch.long), ["c", "a", "zz", "b"])
    out = Inputs([provider]).features(Identity(), batch)
    torch.testing.assert_close(out.targets, torch.tensor([float("nan"), 1.0, float("nan"), 2.0]),
                               equal_nan=True)
    with pytest.raises(ConfigError, match="set data.run"):
        build_inputs(objective_config({}), {Need.TARGETS})


def test_a_missing_or_text_target_column_names_the_file(tmp_path):
    run = _run_with_targets(tmp_path, {"a": 1.0}, column="other")
    with pytest.raises(DataError, match=r"samples.parquet \(column 'quality_sdd'\): no such column"):
        RunTargets.from_run(run, "quality_sdd")
    pq.write_table(pa.table({"key": ["a"], "label": [0], "note": ["x"]}), run / "samples.parquet")
    with pytest.raises(DataError, match="must be numeric"):
        RunTargets.from_run(run, "note")
