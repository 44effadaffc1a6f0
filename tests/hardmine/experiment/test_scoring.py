"""Loading a scored backbone from its checkpoint folder: only the ``model:`` section of the saved training
config is read, so runs saved before a training key moved still load."""

from __future__ import annotations

import pytest
import torch
import yaml

from fr_data.io.errors import ConfigError
from fr_train.checkpoints.resume import save_tensors
from fr_train.models import get_model
from hardmine.experiment.scoring import load_backbone

MODEL = {"name": "tiny", "embedding_size": 8}


def _checkpoint(folder, config):
    torch.manual_seed(3)
    model = get_model("tiny", embedding_size=8).eval()
    save_tensors(model.state_dict(), folder / "model.pt")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return model


def test_a_config_with_moved_training_keys_still_loads_the_backbone(tmp_path):
    old_keys = {"model": MODEL, "partial_fc": {"enabled": False}, "kd": {"mode": "none"},
                "objective": {"losses": []}}  # keys a newer training config refuses
    model = _checkpoint(tmp_path, old_keys)
    images = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    loaded = load_backbone(tmp_path / "model.pt")
    torch.testing.assert_close(loaded(images), model(images), rtol=0, atol=0)


def test_a_bad_model_section_names_the_config_file(tmp_path):
    _checkpoint(tmp_path, {"model": {**MODEL, "widht": 2}})
    with pytest.raises(ConfigError, match=r"config\.yaml: model: unknown key\(s\) \['widht'\]"):
        load_backbone(tmp_path / "model.pt")
