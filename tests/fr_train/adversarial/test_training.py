"""Adversarial training: the ``adversarial:`` section's checks, the compute it adds, and one AFA / PGD-AT run."""

from __future__ import annotations

import pytest
import torch

from fr_data.io.errors import ConfigError
from fr_train.adversarial.config import AdversarialConfig
from fr_train.adversarial.training import build_adversarial
from fr_train.config import load_train_config
from fr_train.trainer import planned_images_per_step, run
from tests.fr_train.helpers import tiny, tiny_config, tiny_overrides  # noqa: F401  (tiny: a fixture)
from tests.repo import ROOT

AFA = ROOT / "configs" / "afa_synth_tiny.yaml"
PGD_AT = ROOT / "configs" / "pgd_at_synth_tiny.yaml"


@pytest.mark.parametrize("config, sections, message", [
    (AFA, {"model": {"options": {"dual_bn": False}}}, "needs a dual-BN backbone"),
    (PGD_AT, {"model": {"options": {"dual_bn": True}}}, "with one BN"),
    (AFA, {"adversarial": {"eps_maxx": 0.1}}, "eps_maxx"),
    (AFA, {"adversarial": {"mode": "fgsm"}}, "mode"),
    (AFA, {"adversarial": {"steps": 0}}, "adversarial.steps must be >= 1"),
    (AFA, {"adversarial": {"eps_max": 2.0}}, "adversarial.eps_max"),
    (PGD_AT, {"objective": {"partial_fc": {"enabled": True}}}, "local margin head"),
    (AFA, {"model": {"options": {"dual_bn": "yes"}}}, "model.options.dual_bn must be true or false"),
])
def test_bad_adversarial_settings_are_config_errors(tiny, tmp_path, config, sections, message):  # noqa: F811
    with pytest.raises(ConfigError, match=message):
        load_train_config(config, tiny_overrides(tiny, tmp_path, **sections))


@pytest.mark.parametrize("config, per_step", [(None, 4), (PGD_AT, 4 + 3 * 4), (AFA, 4 + 4 + 3 * 4)])
def test_planned_images_count_every_pgd_step_and_the_attacked_batch(tiny, tmp_path, config, per_step):  # noqa: F811
    cfg = (tiny_config(tiny, tmp_path) if config is None
           else load_train_config(config, tiny_overrides(tiny, tmp_path)))
    assert planned_images_per_step(cfg) == per_step  # batch 4, 3 steps; AFA also trains the attacked batch


@pytest.mark.parametrize("config, parts", [(AFA, {"ce", "adv_ce", "fusion"}), (PGD_AT, {"ce"})])
def test_an_adversarial_run_forwards_what_was_planned(tiny, tmp_path, config, parts):  # noqa: F811
    cfg = load_train_config(config, tiny_overrides(tiny, tmp_path, train={"max_steps": 2}, schedule={"warmup_steps": 1}))
    result = run(cfg)
    assert result.state.images_seen == 2 * planned_images_per_step(cfg)
    assert parts <= set(result.records[-1])
    state = torch.load(result.checkpoint / "model.pt", weights_only=True)
    if config is AFA:  # the attack runs in eval mode: each copy saw its own batch once per step
        assert int(state["net.body.0.1.clean.num_batches_tracked"]) == 2
        assert int(state["net.body.0.1.adversarial.num_batches_tracked"]) == 2
    else:
        assert int(state["body.0.1.num_batches_tracked"]) == 2


def test_strengths_are_uniform_up_to_eps_max_or_fixed():
    uniform = build_adversarial(AdversarialConfig(mode="afa", eps_max=0.5), seed=0).strengths(1000)
    assert float(uniform.min()) >= 0 and float(uniform.max()) <= 0.5 and 0.2 < float(uniform.mean()) < 0.3
    fixed = build_adversarial(AdversarialConfig(mode="pgd_at", strength="fixed", eps_max=0.5), seed=0).strengths(3)
    assert fixed.tolist() == [0.5, 0.5, 0.5]
    assert build_adversarial(AdversarialConfig(), seed=0) is None  # mode off
