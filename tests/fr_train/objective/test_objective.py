"""Objective: "CurricularFace + 1.0*DDL + 0.1*OT" from a typed config, term values, logging parts, the
needs terms declare (and the batch view they get), the classification slot, errors."""

import copy
from dataclasses import fields

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.objective import (NEED_FIELDS, TERMS, Batch, Need, Objective, Term, TermContext, TermsConfig,
                                build_objective, check_objective_config, objective_config)
from fr_train.objective.losses import LOSSES, DistributionDistillationLoss, EKDLoss, OTLoss
from fr_train.objective.partial_fc import PartialFC
from tests.fr_train.helpers import Probe

D, C = 8, 6


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(C)
    centers = torch.randn(C, D, generator=g)
    easy = (centers + 0.3 * torch.randn(C, D, generator=g)).requires_grad_()
    hard = (centers + 1.0 * torch.randn(C, D, generator=g)).requires_grad_()
    pairs = [centers[:4] + s * torch.randn(4, D, generator=g) for s in (0.2, 0.2, 0.6, 0.6)]
    return Batch(
        embeddings=hard,
        labels=labels,
        teacher_embeddings=torch.randn(C, 5, generator=g),
        reference=easy,
        reference_labels=labels,
        neg_branches=[easy, hard],
        pos_a=[pairs[0], pairs[2]],
        pos_b=[pairs[1], pairs[3]],
        targets=torch.linspace(0.0, 100.0, C),
    )


CONFIG = {
    "head": {"name": "curricularface", "s": 64.0, "m": 0.5},
    "terms": {"ddl": {"weight": 1.0}, "ot": {"weight": 0.1, "margin": 0.5, "eps": 0.1}},
}


def build(section):
    return build_objective(objective_config(section), embedding_size=D, num_classes=C)


def test_config_combines_curricularface_ddl_and_ot():
    objective = build(CONFIG)
    assert type(objective.head).__name__ == "CurricularFace"
    assert isinstance(objective.terms["ddl"], DistributionDistillationLoss)
    assert isinstance(objective.terms["ot"], OTLoss) and objective.terms["ot"].eps == 0.1
    batch = _batch()
    head_before = copy.deepcopy(objective.head)
    out = objective(batch)
    ce = F.cross_entropy(head_before(batch.embeddings, batch.labels), batch.labels)
    ddl = DistributionDistillationLoss()(batch.neg_branches, batch.pos_a, batch.pos_b).loss
    ot_loss = OTLoss(margin=0.5, eps=0.1)
    ot = ot_loss(batch.embeddings, batch.labels, batch.reference, batch.reference_labels).loss
    assert float(out.parts["ce"]) == pytest.approx(float(ce.detach()), rel=1e-6)
    assert float(out.parts["ddl"]) == pytest.approx(float(ddl.detach()), rel=1e-6)
    assert float(out.parts["ot"]) == pytest.approx(float(ot.detach()), rel=1e-6)
    expected = ce + 1.0 * ddl + 0.1 * ot
    assert float(out.loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert {"total", "ddl/pos_kl", "ddl/order"} <= set(out.parts)
    assert float(out.parts["ot/num_groups"]) > 0 and float(out.parts["ot"]) > 0
    out.loss.backward()
    assert batch.embeddings.grad.abs().sum() > 0 and objective.head.weight.grad.abs().sum() > 0


def test_aux_only_objective_with_ekd_and_gather_is_identity_without_process_group():
    batch = _batch()
    config = {"head": None, "terms": {"ekd": {"weight": 2.0, "top_k": 10}}, "gather": True}
    objective = build(config)
    assert objective.head is None and isinstance(objective.terms["ekd"], EKDLoss)
    out = objective(batch)
    alone = EKDLoss(top_k=10)(batch.embeddings, batch.teacher_embeddings, batch.labels).loss
    assert float(out.loss.detach()) == pytest.approx(2.0 * float(alone.detach()), rel=1e-6)
    assert "ce" not in out.parts


def test_objective_state_dict_carries_loss_buffers():
    objective = build({"terms": {"ekd": {}}})
    assert "terms.ekd.student_thresholds" in objective.state_dict()


def test_any_object_with_batch_loss_plugs_in():
    class MeanNorm(nn.Module):
        def batch_loss(self, batch):
            return batch.embeddings.norm(dim=1).mean()

    batch = _batch()
    out = Objective(None, [Term("norm", MeanNorm(), 0.5)])(batch)
    expected = 0.5 * float(batch.embeddings.norm(dim=1).mean().detach())
    assert float(out.loss.detach()) == pytest.approx(expected)


def test_missing_batch_field_names_the_loss():
    batch = _batch()
    batch.teacher_embeddings = None
    with pytest.raises(ValueError, match="EKDLoss needs batch.teacher_embeddings"):
        Objective(None, [Term("ekd", EKDLoss(), needs=frozenset({Need.TEACHER}))])(batch)


@pytest.mark.parametrize(
    "config, match",
    [
        ({"heads": None}, r"objective: unknown key\(s\) \['heads'\]"),
        ({"terms": {"triplet": {}}}, r"objective.terms: unknown key\(s\) \['triplet'\]"),
        ({"terms": {"ot": {"sigma": 1.0}}}, r"objective.terms.ot: unknown key\(s\) \['sigma'\]"),
        ({"terms": {"ot": {"reference": "easy"}}}, r"objective.terms.ot.reference: 'easy' is not one of"),
        ({"terms": {"ddl": {"sigma": 0.0}}}, r"objective.terms.ddl: need num_bins >= 1 and sigma > 0"),
        ({"terms": {"kd_lowres": {}}}, r"objective.terms.kd_lowres.classifier: .* required"),
        ({"head": {"name": "nosuchhead"}}, "nosuchhead"),
        ({"head": {"name": "arcface", "momentum": 0.1}}, r"objective.head: arcface: .*momentum"),
        ({"head": {"name": "cifp", "target_fpr": 2.0}}, "target_fpr"),
        ({"head": None, "partial_fc": {"enabled": True}}, r"partial_fc.enabled needs objective.head"),
        ({"partial_fc": {"sample_rate": 0.0}}, r"objective.partial_fc.sample_rate must lie in"),
        ({"lowres_scale": [0.5, 0.25]}, r"objective.lowres_scale must be \[min, max\]"),
        ({"terms": {"quality": {"delta": 0.0}}}, r"objective.terms.quality: scale and delta must be > 0"),
        ({"target_column": ""}, r"objective.target_column must name a column"),
    ],
)
def test_config_errors(config, match):
    with pytest.raises(ConfigError, match=match):
        build(config)


@pytest.mark.parametrize("terms, composer, match", [
    ({"ekd": {}}, True, r"objective.terms.ekd needs teacher embeddings: set objective.teacher"),
    ({"ot": {"reference": "teacher"}}, True, r"objective.terms.ot needs teacher embeddings"),
    ({"ddl": {}}, False, r"objective.terms.ddl needs composer branches: set data.composer.enabled"),
    ({"ot": {}}, False, r"objective.terms.ot needs composer branches"),
])
def test_a_need_nothing_provides_is_an_error(terms, composer, match):
    cfg = objective_config({"terms": terms})
    with pytest.raises(ConfigError, match=match):
        check_objective_config(cfg, composer=composer)
    check_objective_config(objective_config({"terms": terms, "teacher": {"weights": "t.pt"}}), composer=True)


def test_the_quality_term_needs_targets_from_a_mining_run():
    cfg = objective_config({"head": None, "terms": {"quality": {"scale": 10.0}}})
    with pytest.raises(ConfigError, match=r"terms.quality needs per-sample targets .*: set data.run .*quality_sdd"):
        check_objective_config(cfg, composer=False)
    check_objective_config(cfg, composer=False, run=True)
    objective = build({"head": None, "terms": {"quality": {"scale": 10.0}}})
    assert objective.needs == {Need.TARGETS} and objective.head is None
    out = objective(_batch())
    assert set(out.parts) == {"quality", "quality/mae", "total"}
    assert float(objective.terms["quality"].scale) == 10.0  # kept in the state: objective.pt rebuilds scores


def test_duplicate_term_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        Objective(None, [Term("ot", OTLoss()), Term("ot", OTLoss(), 0.1)])


def test_terms_declare_their_needs():
    objective = build({"terms": {"ddl": {}, "ot": {"reference": "teacher"}, "ekd": {}}})
    assert objective.term_needs == {"ddl": {Need.BRANCHES}, "ot": {Need.TEACHER}, "ekd": {Need.TEACHER}}
    assert objective.needs == {Need.BRANCHES, Need.TEACHER}
    assert build({"terms": {"ot": {}}}).needs == {Need.BRANCHES}
    assert build({}).needs == frozenset()


def test_each_term_sees_only_the_fields_of_its_needs():
    probes = {need: Probe() for need in Need}
    terms = [Term(need.name, probe, needs=frozenset({need})) for need, probe in probes.items()]
    batch = _batch()
    batch.lowres_embeddings = batch.embeddings + 1.0
    Objective(None, terms)(batch)
    for need, probe in probes.items():
        for other, names in NEED_FIELDS.items():
            for name in names:
                assert (getattr(probe.seen, name) is None) == (other is not need), (need, name)
        assert probe.seen.embeddings is batch.embeddings and probe.seen.labels is batch.labels


def test_ot_with_a_teacher_reference_ignores_the_branches():
    batch = _batch()
    noise = torch.randn(C, D, generator=torch.Generator().manual_seed(2))
    batch.teacher_embeddings = batch.embeddings.detach() + 0.5 * noise
    out = build({"head": None, "terms": {"ot": {"reference": "teacher", "margin": 2.0}}})(batch)
    alone = OTLoss(margin=2.0)(batch.embeddings, batch.labels, batch.teacher_embeddings).loss
    ot = OTLoss(margin=2.0)
    from_branches = ot(batch.embeddings, batch.labels, batch.reference, batch.reference_labels).loss
    assert float(out.parts["ot"]) == pytest.approx(float(alone.detach()), rel=1e-6)
    assert float(alone.detach()) != pytest.approx(float(from_branches.detach()), rel=1e-3)


def _copy_centres(target, source):
    with torch.no_grad():
        target.copy_(source)


@pytest.mark.parametrize("head", ["arcface", "curricularface"])
def test_partial_fc_slot_equals_the_local_head_on_one_process(head):
    section = {"head": {"name": head, "s": 8.0}, "terms": {"ekd": {"top_k": 5}}}
    local = build(section).double()
    sharded = build({**section, "partial_fc": {"enabled": True}}).double()
    assert isinstance(sharded.classifier, PartialFC) and sharded.head is None and local.classifier is None
    _copy_centres(sharded.classifier.weight, local.head.weight)
    emb = torch.randn(C, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    expected = local.classification_loss(emb, labels)
    torch.testing.assert_close(sharded.classification_loss(emb, labels), expected, rtol=0, atol=1e-12)


def test_replicated_and_sharded_state_are_kept_apart():
    section = {"head": {"name": "curricularface"}, "partial_fc": {"enabled": True}, "terms": {"ekd": {}}}
    objective = build(section)
    replicated = objective.replicated_state_dict()
    assert set(replicated) == {"terms.ekd.student_thresholds", "terms.ekd.teacher_thresholds"}
    assert set(objective.classifier.state_dict()) == {"weight", "head.t"}
    assert sorted(objective.unsynchronised_names()) == ["classifier.head.t", "classifier.weight",
                                                       "terms.ekd.divisors"]
    other = build(section)
    other.load_state_dicts({k: v + 1 for k, v in replicated.items()},
                           {k: v + 2 for k, v in objective.classifier.state_dict().items()})
    torch.testing.assert_close(other.classifier.weight, objective.classifier.weight + 2)
    thresholds = replicated["terms.ekd.student_thresholds"]
    torch.testing.assert_close(other.terms["ekd"].student_thresholds, thresholds + 1)
    assert objective.generators == {"partial_fc": objective.classifier.generator}
    assert "head.weight" in build({}).replicated_state_dict() and build({}).unsynchronised_names() == []


def test_term_settings_default_to_the_loss_defaults():
    assert list(TERMS) == [f.name for f in fields(TermsConfig)]
    for name in ("ddl", "ot", "ekd", "fan_paired", "fan_unpaired"):
        built = TERMS[name].loss(TERMS[name].config(), TermContext(D, C))
        assert repr(built) == repr(LOSSES[name]())
