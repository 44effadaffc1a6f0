"""Backbones: arcface_torch-compatible IResNet naming, safe checkpoint loading, registry, tiny model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fr_data.io.errors import ConfigError, DataError
from fr_train.checkpoints.weights import load_state_dict, load_weights, save_state_dict
from fr_train.models import MODELS, get_model, register_model
from fr_train.models.iresnet import LAYERS


def _bn(prefix: str, n: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (n,), f"{prefix}.bias": (n,), f"{prefix}.running_mean": (n,),
            f"{prefix}.running_var": (n,), f"{prefix}.num_batches_tracked": ()}


def arcface_torch_keys(layers: tuple[int, ...], emb: int = 512) -> dict[str, tuple[int, ...]]:
    """Expected state-dict names/shapes of arcface_torch ``iresnet`` written from the architecture facts."""
    keys = {"conv1.weight": (64, 3, 3, 3), **_bn("bn1", 64), "prelu.weight": (64,)}
    cin = 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            keys |= _bn(f"{p}.bn1", cin) | {f"{p}.conv1.weight": (width, cin, 3, 3)}
            keys |= _bn(f"{p}.bn2", width) | {f"{p}.prelu.weight": (width,)}
            keys |= {f"{p}.conv2.weight": (width, width, 3, 3)} | _bn(f"{p}.bn3", width)
            if b == 0:
                keys |= {f"{p}.downsample.0.weight": (width, cin, 1, 1)} | _bn(f"{p}.downsample.1", width)
            cin = width
    keys |= _bn("bn2", 512) | {"fc.weight": (emb, 512 * 7 * 7), "fc.bias": (emb,)} | _bn("features", emb)
    return keys


def test_iresnet18_state_dict_names_and_shapes_match_arcface_torch():
    model = get_model("iresnet18")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == arcface_torch_keys(LAYERS[18])
    assert got["layer1.0.bn1.weight"] == (64,)
    assert got["fc.weight"] == (512, 25088)


@pytest.mark.parametrize(("depth", "layers"), [(34, (3, 4, 6, 3)), (50, (3, 4, 14, 3)), (100, (3, 13, 30, 3)),
                                                 (200, (6, 26, 60, 6))])
def test_deeper_iresnets_have_arcface_torch_keys(depth, layers):
    with torch.device("meta"):  # names and shapes only: no memory, no initialisation cost
        model = get_model(f"iresnet{depth}")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == arcface_torch_keys(layers)


def _unit(prefix: str, cin: int, cout: int, kernel: int, groups: int = 1, act: bool = True) -> dict:
    """arcface_torch ConvBlock (conv, BN, PReLU) or LinearBlock (conv, BN) under ``prefix.layers``."""
    keys = {f"{prefix}.layers.0.weight": (cout, cin // groups, kernel, kernel)} | _bn(f"{prefix}.layers.1", cout)
    return keys | ({f"{prefix}.layers.2.weight": (cout,)} if act else {})


def _depthwise(prefix: str, cin: int, cout: int, width: int) -> dict:
    """arcface_torch DepthWise: 1x1 to ``width``, depthwise 3x3, linear 1x1 to ``cout``."""
    return (_unit(f"{prefix}.layers.0", cin, width, 1) | _unit(f"{prefix}.layers.1", width, width, 3, width)
            | _unit(f"{prefix}.layers.2", width, cout, 1, act=False))


def arcface_torch_mbf_keys(blocks: tuple[int, ...], scale: int, emb: int = 512) -> dict[str, tuple[int, ...]]:
    """State-dict names/shapes of arcface_torch ``get_mbf`` written from the architecture facts: widths
    64s/128s, expansion widths 128/128/256/256 in the residual stages and 128/256/512 in the stride-2
    blocks, a 64-group 3x3 conv as ``layers.1`` when blocks[0] == 1, the GDC head."""
    a, b = 64 * scale, 128 * scale
    keys = _unit("layers.0", 3, a, 3)
    if blocks[0] == 1:
        keys |= _unit("layers.1", a, a, 3, groups=64)
    stages = [(1, a, 128), (3, a, 128), (5, b, 256), (7, b, 256)]
    for (index, channels, width), repeats in zip(stages, blocks):
        if index > 1 or repeats > 1:
            for r in range(repeats):
                keys |= _depthwise(f"layers.{index}.layers.{r}", channels, channels, width)
    for index, cin, cout, width in ((2, a, a, 128), (4, a, b, 256), (6, b, b, 512)):
        keys |= _depthwise(f"layers.{index}", cin, cout, width)
    keys |= _unit("conv_sep", b, 512, 1) | _unit("features.layers.0", 512, 512, 7, groups=512, act=False)
    return keys | {"features.layers.2.weight": (emb, 512)} | _bn("features.layers.3", emb)


@pytest.mark.parametrize(("name", "blocks", "scale"), [("mbf", (1, 4, 6, 2), 2), ("mbf_large", (2, 8, 12, 4), 4)])
def test_mbf_state_dict_names_and_shapes_match_arcface_torch(name, blocks, scale):
    with torch.device("meta"):
        model = get_model(name, embedding_size=256)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == arcface_torch_mbf_keys(blocks, scale, emb=256)
    if name == "mbf":  # by hand: 8 + 1 + 1 + 2 stride-2 + 12 residual inverted blocks, 2 PReLU units
        assert len(got) == 7 + 7 + 20 * (1 + 4 + 1 + 6 + 1 + 2) + 7 + 6 + 1 + 5 == 333
        assert got["layers.1.layers.0.weight"] == (128, 2, 3, 3)  # 64 groups over 128 channels
        assert got["layers.6.layers.1.layers.0.weight"] == (512, 1, 3, 3)


def _reference_mbf(state: dict[str, torch.Tensor], x: torch.Tensor, blocks: tuple[int, ...]) -> torch.Tensor:
    """arcface_torch's mbf forward restated with torch.nn.functional on a raw state dict (eval mode)."""
    def unit(prefix, x, stride=1):
        w = state[f"{prefix}.layers.0.weight"]
        x = F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2 if w.shape[-1] == 3 else 0,
                     groups=x.shape[1] // w.shape[1])
        bn = [state[f"{prefix}.layers.1.{n}"] for n in ("running_mean", "running_var", "weight", "bias")]
        x = F.batch_norm(x, *bn, training=False)
        act = state.get(f"{prefix}.layers.2.weight")
        return x if act is None else F.prelu(x, act)

    def depthwise(prefix, x, stride=1, residual=False):
        y = unit(f"{prefix}.layers.2", unit(f"{prefix}.layers.1", unit(f"{prefix}.layers.0", x), stride))
        return x + y if residual else y

    x = unit("layers.0", x, stride=2)
    x = unit("layers.1", x) if blocks[0] == 1 else x
    for index, repeats in zip((1, 3, 5, 7), blocks):
        if index > 1:
            x = depthwise(f"layers.{index - 1}", x, stride=2)
        if index > 1 or repeats > 1:
            for r in range(repeats):
                x = depthwise(f"layers.{index}.layers.{r}", x, residual=True)
    x = unit("features.layers.0", unit("conv_sep", x)).flatten(1) @ state["features.layers.2.weight"].T
    bn = [state[f"features.layers.3.{n}"] for n in ("running_mean", "running_var", "weight", "bias")]
    return F.batch_norm(x, *bn, training=False)


def test_mbf_loads_an_arcface_torch_state_dict_and_computes_its_forward():
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in arcface_torch_mbf_keys((1, 4, 6, 2), 2, emb=64).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        else:
            state[key] = 0.3 * torch.randn(shape, generator=gen)
    model = get_model("mbf", embedding_size=64).eval()
    model.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 112, 112, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference_mbf(state, x, (1, 4, 6, 2)), rtol=1e-4, atol=1e-4)


def test_features_bn_weight_is_frozen_to_one():
    model = get_model("iresnet18")
    assert not model.features.weight.requires_grad
    assert torch.equal(model.features.weight, torch.ones(512))
    assert "features.weight" not in {n for n, p in model.named_parameters() if p.requires_grad}


def test_iresnet_checkpoint_roundtrip_loads_strictly_weights_only(tmp_path):
    torch.manual_seed(0)
    model = get_model("iresnet18").eval()
    path = tmp_path / "backbone.pth"
    torch.save(model.state_dict(), path)  # plain state dict, as arcface_torch writes backbone.pth
    state = torch.load(path, map_location="cpu", weights_only=True)
    fresh = get_model("iresnet18").eval()
    fresh.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 512) and torch.equal(out, fresh(x))


def test_iresnet_fp16_flag_is_a_no_op_on_cpu():
    torch.manual_seed(0)
    plain = get_model("iresnet18").eval()
    half = get_model("iresnet18", fp16=True).eval()
    half.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        out = half(x)
        assert out.dtype == torch.float32 and torch.equal(out, plain(x))


@pytest.mark.gpu
def test_iresnet_fp16_body_on_cuda_returns_float32_close_to_fp32():
    torch.manual_seed(0)
    plain = get_model("iresnet18").cuda()
    half = get_model("iresnet18", fp16=True).cuda()
    half.load_state_dict(plain.state_dict())
    x = torch.randn(8, 3, 112, 112, device="cuda")
    plain.train(), half.train()  # batch statistics keep activations well scaled for a fresh model
    a, b = plain(x), half(x)
    assert b.dtype == torch.float32
    assert F.cosine_similarity(a, b).min() > 0.99


@pytest.mark.parametrize(("name", "emb"), [("tiny", 64), ("tiny", 512), ("mobilefacenet", 128),
                                           ("mobilefacenet", 512)])
def test_small_backbones_map_112_images_to_embeddings(name, emb):
    model = get_model(name, embedding_size=emb).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 112, 112)).shape == (2, emb)


def test_registry_unknown_name_and_registration():
    with pytest.raises(ConfigError, match="unknown model 'resnet9000'"):
        get_model("resnet9000")

    @register_model("test_linear")
    def build(embedding_size: int = 4) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 112 * 112, embedding_size))

    try:
        assert get_model("test_linear", embedding_size=3)(torch.zeros(1, 3, 112, 112)).shape == (1, 3)
        with pytest.raises(ConfigError, match="already registered"):
            register_model("test_linear")(build)
    finally:
        MODELS.pop("test_linear")


def test_load_state_dict_unwraps_wrappers_and_ddp_prefixes(tmp_path):
    model = get_model("tiny", embedding_size=8)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    path = tmp_path / "ckpt.pt"
    torch.save(wrapped, path)
    state = load_state_dict(path)
    assert state.keys() == model.state_dict().keys()
    fresh = load_weights(get_model("tiny", embedding_size=8), path)
    assert torch.equal(fresh.fc.weight, model.fc.weight)


def test_save_state_dict_roundtrip(tmp_path):
    model = get_model("tiny", embedding_size=8)
    path = save_state_dict(model, tmp_path / "sub" / "model.pt")
    assert set(torch.load(path, weights_only=True)) == set(model.state_dict())


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_load_state_dict_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Payload()}, path)
    with pytest.raises(DataError, match="evil.pt"):
        load_state_dict(path)


def test_load_state_dict_names_non_tensor_key(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"fc.weight": torch.zeros(2), "note": "hello"}, path)
    with pytest.raises(DataError, match="key 'note'"):
        load_state_dict(path)


def test_load_weights_reports_mismatch_with_file_name(tmp_path):
    path = tmp_path / "small.pt"
    torch.save(get_model("tiny", embedding_size=8).state_dict(), path)
    with pytest.raises(DataError, match="small.pt"):
        load_weights(get_model("tiny", embedding_size=16), path)


def _nearest_centre_accuracy(model, images, fresh, num_ids, per_id) -> float:
    """Classify fresh views by the nearest class mean of normalised training embeddings."""
    model.eval()
    with torch.no_grad():
        centres = F.normalize(model(images).view(num_ids, per_id, -1).mean(1), dim=1)
        pred = (F.normalize(model(fresh), dim=1) @ centres.T).argmax(1)
    model.train()
    return (pred == torch.arange(num_ids).repeat_interleave(per_id)).float().mean().item()


def test_tiny_backbone_learns_synthetic_identities():
    torch.manual_seed(0)
    num_ids, per_id = 4, 4
    templates = 0.3 * torch.randn(num_ids, 3, 112, 112)  # faint identity pattern under strong noise
    images = templates.repeat_interleave(per_id, 0) + torch.randn(num_ids * per_id, 3, 112, 112)
    fresh = templates.repeat_interleave(per_id, 0) + torch.randn(num_ids * per_id, 3, 112, 112)
    labels = torch.arange(num_ids).repeat_interleave(per_id)
    model = get_model("tiny", embedding_size=32)
    before = _nearest_centre_accuracy(model, images, fresh, num_ids, per_id)
    classifier = nn.Linear(32, num_ids)
    opt = torch.optim.SGD([*model.parameters(), *classifier.parameters()], lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(classifier(model(images)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert before < 0.75  # the untrained network does not already separate the identities
    assert losses[-1] < 0.2 * losses[0]
    assert _nearest_centre_accuracy(model, images, fresh, num_ids, per_id) >= 0.9
