"""Tests of fr_train.trainer: single-process runs on tiny shards (ArcFace, DDL + OT with the composer,
Partial FC, EKD and low-resolution KD), the Batch the objective receives, checkpoints and config.yaml."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fr_data.formats.verification import save_bin
from fr_data.io.errors import DataError
from fr_train.checkpoints.resume import load_tensors, read_state
from fr_train.config import load_train_config
from fr_train.data import Branch, ImageBatch
from fr_train.objective import Need, Objective, Term
from fr_train.objective.inputs import BranchFeatures, Inputs
from fr_train.trainer import Precision, TrainModule, planned_images_per_step, run
from tests.fr_train.data.builders import face_jpeg
from tests.fr_train.helpers import (
    CONFIG,
    Identity,
    Probe,
    pixels,
    tiny,  # noqa: F401  (fixture)
    tiny_config,
    tiny_overrides,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def losses(result) -> list[float]:
    return [r["loss"] for r in result.records if "loss" in r]


def test_arcface_run_writes_checkpoint_config_and_metrics(tiny, tmp_path, capsys):
    cfg = tiny_config(tiny, tmp_path / "out", train={"ckpt_every": 4})
    result = run(cfg)
    assert result.state.step == 6
    report = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert f"selection: kept {report['selected']} of {report['total']} samples" in capsys.readouterr().out
    assert len(losses(result)) == 6 and all(math.isfinite(v) for v in losses(result))
    ckpts = sorted(p.name for p in (tmp_path / "out" / "checkpoints").glob("step-*"))
    assert ckpts == ["step-00000004", "step-00000006"]
    final = tmp_path / "out" / "checkpoints" / "step-00000006"
    assert load_train_config(final / "config.yaml") == cfg  # the resolved config, loadable as is
    assert read_state(final).step == 6 and read_state(final).epoch == 0
    backbone = load_tensors(final / "model.pt")
    assert all(isinstance(v, torch.Tensor) for v in backbone.values()) and "fc.weight" in backbone
    assert load_tensors(final / "objective.pt")["head.weight"].shape == (6, 16)
    lines = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6


def test_epochs_follow_the_data_and_schedule_spans_the_run(tiny, tmp_path):
    # 36 samples / batch 4 = 9 batches per epoch; 2 epochs = 18 steps, lr ends near 0 (polynomial)
    cfg = tiny_config(tiny, tmp_path / "out", train={"max_steps": None, "epochs": 2, "log_every": 9})
    result = run(cfg)
    assert result.state.step == 18 and result.state.epoch == 2
    assert [r["step"] for r in result.records] == [9, 18]
    assert result.records[-1]["lr"] == pytest.approx(0.1 * (1 / 16) ** 2)
    names = sorted(p.name for p in (tmp_path / "out" / "checkpoints").glob("step-*"))
    assert names == ["step-00000009", "step-00000018"]  # one per epoch (ckpt_every 0)


def test_ddl_ot_with_composer_branches(tiny, tmp_path):
    cfg = tiny_config(tiny, tmp_path / "out",
                      data={"composer": {"enabled": True, "identities": 3, "pairs": 3,
                                         "hard": [{"source": "pairs", "where": "split = 'hard'"}]}},
                      objective={"head": {"name": "curricularface", "s": 16.0, "m": 0.3},
                                 "terms": {"ddl": {}, "ot": {"weight": 0.1}}})
    result = run(cfg)
    record = result.records[-1]
    for key in ("ce", "ddl", "ddl/pos_kl", "ddl/order", "ot"):
        assert math.isfinite(record[key]), key
    state = load_tensors(result.checkpoint / "objective.pt")
    assert float(state["head.t"]) != 0.0  # CurricularFace's t is saved with the objective


COMPOSER = {"enabled": True, "identities": 3, "pairs": 2,
            "hard": [{"source": "pairs", "where": "split = 'hard'"},
                     {"source": "variation", "where": "pose_bin = 'profile'"}]}


@pytest.mark.parametrize("sections, per_step", [
    ({}, 4),  # the classification batch only
    ({"data": {"composer": COMPOSER}}, 4),  # branches composed but no term needs them: never forwarded
    ({"data": {"composer": COMPOSER}, "objective": {"terms": {"ddl": {}}}},
     4 + 3 * (3 + 2 * 2)),  # + easy and two hard branches, forwarded for DDL
])
def test_images_seen_counts_composer_branch_images(tiny, tmp_path, sections, per_step):
    cfg = tiny_config(tiny, tmp_path / "out", train={"max_steps": 5, "log_every": 2}, **sections)
    assert planned_images_per_step(cfg) == per_step
    first = run(cfg, stop_after=3)  # preempted: the count is checkpointed and resumed
    assert first.state.images_seen == read_state(first.checkpoint).images_seen == 3 * per_step
    result = run(cfg, resume=True)
    assert result.state.images_seen == read_state(result.checkpoint).images_seen == 5 * per_step
    logged = [(r["step"], r["images_seen"]) for r in result.records if "images_seen" in r]
    assert logged == [(4, 4 * per_step), (5, 5 * per_step)]


def test_images_seen_counts_the_low_resolution_copies(tiny, tmp_path):
    teacher = run(tiny_config(tiny, tmp_path / "teacher", train={"max_steps": 3}))
    cfg = tiny_config(tiny, tmp_path / "student", train={"max_steps": 3},
                      objective={"terms": {"kd_lowres": {"classifier": str(teacher.checkpoint / "objective.pt")}}})
    assert planned_images_per_step(cfg) == 8
    assert run(cfg).state.images_seen == 24


def test_partial_fc_replaces_the_head(tiny, tmp_path):
    cfg = tiny_config(tiny, tmp_path / "out", objective={"partial_fc": {"enabled": True, "sample_rate": 0.5}})
    result = run(cfg)
    assert all(math.isfinite(v) for v in losses(result))
    assert "head.weight" not in load_tensors(result.checkpoint / "objective.pt")
    assert load_tensors(result.checkpoint / "classifier.pt")["weight"].shape == (6, 16)


def test_ekd_teacher_fills_teacher_embeddings_and_stays_frozen(tiny, tmp_path):
    teacher_run = run(tiny_config(tiny, tmp_path / "teacher", train={"max_steps": 3}))
    teacher_file = teacher_run.checkpoint / "model.pt"
    before = load_tensors(teacher_file)
    cfg = tiny_config(tiny, tmp_path / "student",
                      objective={"terms": {"ekd": {"top_k": 20}}, "gather": True,
                                 "teacher": {"name": "tiny", "embedding_size": 16,
                                             "weights": str(teacher_file)}})
    result = run(cfg)
    assert all(math.isfinite(r["ekd"]) for r in result.records if "ekd" in r)
    thresholds = load_tensors(result.checkpoint / "objective.pt")["terms.ekd.student_thresholds"]
    assert torch.count_nonzero(thresholds) > 0  # EKD's running thresholds are checkpointed
    after = load_tensors(teacher_file)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_lowres_kd_uses_the_teacher_classifier(tiny, tmp_path):
    teacher_run = run(tiny_config(tiny, tmp_path / "teacher", train={"max_steps": 3}))
    cfg = tiny_config(tiny, tmp_path / "student",
                      objective={"terms": {"kd_lowres": {
                          "classifier": str(teacher_run.checkpoint / "objective.pt"),
                          "s": 16.0, "m": 0.2, "weight": 0.5}}})
    result = run(cfg)
    values = [r["kd_lowres"] for r in result.records if "kd_lowres" in r]
    assert len(values) == 6 and all(math.isfinite(v) and v > 0 for v in values)
    record = result.records[0]
    assert record["loss"] == pytest.approx(record["ce"] + 0.5 * record["kd_lowres"], rel=1e-6)


def test_module_fills_branches_and_reference_from_one_backbone_pass():
    probe = Probe()
    objective = Objective(None, [Term("probe", probe, needs=frozenset({Need.BRANCHES}))])
    module = TrainModule(Identity(), objective, Inputs([BranchFeatures()]))
    easy = Branch(pixels([10, 11]), torch.tensor([0, 1]), pixels([12]), pixels([13]), torch.tensor([2]))
    hard = Branch(pixels([20, 21]), torch.tensor([3, 4]), pixels([22]), pixels([23]), torch.tensor([5]))
    batch = ImageBatch(pixels([1, 2, 3]), torch.tensor([7, 8, 9]), ["a", "b", "c"], [easy, hard])
    loss, parts = module(batch)
    seen = probe.seen
    first = lambda t: t[:, 0].tolist()  # noqa: E731
    assert first(seen.embeddings) == [1, 2, 3] and seen.labels.tolist() == [7, 8, 9]
    assert [first(t) for t in seen.neg_branches] == [[10, 11], [20, 21]]
    assert [first(t) for t in seen.pos_a] == [[12], [22]] and [first(t) for t in seen.pos_b] == [[13], [23]]
    assert first(seen.reference) == [10, 11, 12, 13] and seen.reference_labels.tolist() == [0, 1, 2, 2]
    assert float(loss.detach()) == 0.0 and "total" in parts


def test_module_refuses_a_need_no_input_provides():
    objective = Objective(None, [Term("probe", Probe(), needs=frozenset({Need.TEACHER}))])
    with pytest.raises(ValueError, match="teacher embeddings"):
        TrainModule(Identity(), objective)


def test_bad_loss_stops_with_a_clear_error(tiny, tmp_path):
    cfg = tiny_config(tiny, tmp_path / "out", optim={"lr": 1.0e30}, train={"clip_grad_norm": None})
    with pytest.raises(FloatingPointError, match="step"):
        run(cfg)


def test_periodic_evaluation_on_a_bin_pack(tiny, tmp_path):
    images = [face_jpeg(c, i) for c, i in ((0, 1), (0, 2), (1, 1), (2, 1), (3, 1), (3, 2), (4, 1), (5, 1))]
    save_bin(tmp_path / "mini.bin", images, [True, False, True, False])
    cfg = tiny_config(tiny, tmp_path / "out", eval={"bins": [str(tmp_path / "mini.bin")], "folds": 2},
                      train={"max_steps": 4, "eval_every": 2, "log_every": 2})
    result = run(cfg)
    evals = [r for r in result.records if "bin/mini/accuracy" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(0.0 <= r["bin/mini/accuracy"] <= 1.0 for r in evals)


def test_precision_is_fp32_on_cpu_and_autocast_on_gpu():
    cpu = Precision("fp16", torch.device("cpu"))
    assert cpu.dtype is None and cpu.scaler is None
    with cpu.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert Precision("bf16", torch.device("cuda", 0)).dtype is torch.bfloat16


def test_resume_refuses_sharded_checkpoints_of_another_world_size(tiny, tmp_path):
    cfg = tiny_config(tiny, tmp_path / "out", train={"max_steps": 3})
    checkpoint = run(cfg).checkpoint
    state = json.loads((checkpoint / "state.json").read_text())
    (checkpoint / "state.json").write_text(json.dumps({**state, "sharded": True, "world_size": 2}))
    with pytest.raises(DataError, match="written by 2 ranks"):
        run(cfg, resume=checkpoint)


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_on_gpu(tiny, tmp_path, amp):
    cfg = tiny_config(tiny, tmp_path / "out", train={"amp": amp, "device": "cuda"},
                      objective={"partial_fc": {"enabled": True, "sample_rate": 0.5}})
    result = run(cfg)
    assert all(math.isfinite(v) for v in losses(result))
    if amp == "fp16":
        assert (result.checkpoint / "scaler.pt").is_file()


@pytest.mark.parametrize("damage", ["bin_pack", "shard_manifest"])
def test_damaged_inputs_stop_hardmine_train_before_anything_is_written(tiny, tmp_path, capsys, damage):
    """A damaged .bin pack or shard manifest: exit 2, one line naming the file (and image or row), and no
    output folder."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    from hardmine.cli import train

    images = [face_jpeg(c, i) for c, i in ((0, 1), (0, 2), (1, 1), (2, 1))]
    images[3] = images[3][:4] + bytes(40)  # JPEG start, no frame header: refused when the pack opens
    save_bin(tmp_path / "mini.bin", images, [True, False])
    shards = tmp_path / "shards"
    shutil.copytree(tiny.shards, shards)
    if damage == "shard_manifest":
        table = pq.read_table(shards / "samples.parquet")
        labels = table.column("label").to_pylist()
        table = table.set_column(table.schema.get_field_index("label"), "label",
                                 pa.array([float("nan")] + labels[1:], pa.float64()))
        pq.write_table(table, shards / "samples.parquet")
    sections = {"data": {"shards": str(shards)}}
    if damage == "bin_pack":
        sections["eval"] = {"bins": [str(tmp_path / "mini.bin")], "folds": 2}
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"base": str(CONFIG), **tiny_overrides(tiny, tmp_path / "out", **sections)}))
    assert train.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    want = (f"{tmp_path / 'mini.bin'} (image 3)" if damage == "bin_pack"
            else f"{shards / 'samples.parquet'} (column 'label', row 0)")
    assert err.count("\n") == 0 and err.startswith(f"hardmine train: error: {want}"), err
    assert not (tmp_path / "out").exists()
