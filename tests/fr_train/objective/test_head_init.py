"""init.head: a fine-tuning run's head starts from another run's classifier, merged classes averaged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fr_data.io.errors import ConfigError
from fr_train.checkpoints.resume import load_tensors, save_tensors
from fr_train.config import InitConfig
from fr_train.objective.head_init import init_head, merged_rows
from fr_train.trainer import build_trainer, run
from tests.fr_train.data.builders import make_tiny_data
from tests.fr_train.helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


def test_merged_rows_average_the_old_rows_of_each_new_class():
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [9.0, 9.0]])
    rows = merged_rows(weight, np.array([0, 1, 2]), np.array([0, 0, 1]), 2)  # old 3 not selected
    assert torch.equal(rows, torch.tensor([[0.5, 0.5], [2.0, 2.0]]))


def test_a_run_starts_its_head_from_the_source_classifier(tiny, tmp_path):
    source = run(tiny_config(tiny, tmp_path / "source", train={"max_steps": 3}))
    weight = load_tensors(source.checkpoint / "objective.pt")["head.weight"]  # 6 shard labels
    cfg = tiny_config(tiny, tmp_path / "fine", objective={"head": {"name": "curricularface", "s": 16.0, "m": 0.3}},
                      data={"selection": {"merge_classes": True}},
                      init={"head": str(source.checkpoint / "objective.pt")})
    trainer = build_trainer(cfg, torch.device("cpu"))
    head = trainer.module.objective.head.weight.detach()
    assert trainer.data.selection.num_classes == 5  # tiny classes 4 and 5 merge into new class 4
    assert torch.equal(head[:4], weight[:4])
    assert torch.allclose(head[4], (weight[4] + weight[5]) / 2)


def test_a_classifier_that_does_not_fit_is_refused_naming_the_file(tiny, tmp_path):
    cfg = tiny_config(tiny, tmp_path / "fine")
    trainer = build_trainer(cfg, torch.device("cpu"))
    small = tmp_path / "small.pt"
    save_tensors({"head.weight": torch.zeros(3, 16)}, small)
    with pytest.raises(ConfigError, match=r"small.pt: classifier of shape \(3, 16\)"):
        init_head(trainer.module.objective.head, InitConfig(head=str(small)), trainer.data.selection)
    with pytest.raises(ConfigError, match="init.head_key 'w'"):
        init_head(trainer.module.objective.head, InitConfig(head=str(small), head_key="w"), trainer.data.selection)
