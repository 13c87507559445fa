"""Backbone registry, offline weight resolution, projection head and EmbeddingModel freeze semantics."""

from __future__ import annotations

import time

import open_clip
import open_clip.factory
import pytest
import timm
import torch
from huggingface_hub import constants as hf_constants
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from safetensors.torch import save_file
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from lossbench.core.errors import LossbenchError
from lossbench.models import FAMILIES, EmbeddingModel, NormaliseHead, ProjectionHead, create_backbone, register_family
from lossbench.models.backbones import Backbone
from tests.conftest import TINY_TEXT_CLIP


@pytest.fixture(autouse=True)
def empty_weight_caches(tmp_path, monkeypatch):
    """Point every weight cache at empty temporary folders so no machine-local cache leaks in."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------- registry / specs


def test_families_registered():
    assert {"timm", "open_clip", "hybrid"} <= set(FAMILIES)


@pytest.mark.parametrize("spec", ["resnet18", "foo:bar", "timm:", "TIMM:resnet18"])
def test_bad_spec_lists_families(spec):
    with pytest.raises(LossbenchError, match="hybrid.*open_clip.*timm"):
        create_backbone(spec)


def test_register_family_adds_and_rejects_duplicates(monkeypatch):
    monkeypatch.setitem(FAMILIES, "const", None)
    monkeypatch.delitem(FAMILIES, "const")

    @register_family("const")
    def _const(name, pretrained, image_size):
        return Backbone(torch.nn.Flatten(), 3 * image_size**2, (0, 0, 0), (1, 1, 1), image_size, f"const:{name}")

    backbone = create_backbone("const:x", None, 4)
    assert backbone(torch.zeros(2, 3, 4, 4)).shape == (2, 48)
    with pytest.raises(ValueError, match="already registered"):
        register_family("const")(_const)


def test_unknown_timm_model_suggests_close_match():
    with pytest.raises(LossbenchError, match=r"unknown timm model 'resnt18'.*resnet18"):
        create_backbone("timm:resnt18")


def test_unknown_open_clip_model_suggests_close_match():
    with pytest.raises(LossbenchError, match=r"unknown open_clip model 'ViT-B-23'.*ViT-B-32"):
        create_backbone("open_clip:ViT-B-23")


@pytest.mark.parametrize("image_size", [0, -4, 3.5, True])
def test_bad_image_size(image_size):
    with pytest.raises(LossbenchError, match="image size"):
        create_backbone("timm:test_efficientnet", None, image_size)


# ------------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("spec", "num_features", "mean", "std"),
    [
        ("timm:test_efficientnet", 256, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
        ("timm:test_vit", 64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # fixed-input-size model: built at 32
        ("open_clip:ViT-B-32", 512, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD),
    ],
)
def test_backbone_shapes_and_norm(spec, num_features, mean, std):
    torch.manual_seed(0)
    backbone = create_backbone(spec, None, 32).eval()
    assert backbone.num_features == num_features
    assert backbone.input_size == 32
    assert backbone.mean == pytest.approx(mean) and backbone.std == pytest.approx(std)
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, num_features) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_hybrid_concatenates_and_renormalises_for_each_part():
    torch.manual_seed(0)
    hybrid = create_backbone("hybrid:timm:test_efficientnet+timm:test_vit", None, 32).eval()
    first, second = hybrid.body.parts
    assert hybrid.num_features == 256 + 64
    assert hybrid.mean == pytest.approx(IMAGENET_DEFAULT_MEAN) and hybrid.std == pytest.approx(IMAGENET_DEFAULT_STD)
    pixels = torch.rand(2, 3, 32, 32)

    def norm(part: Backbone) -> torch.Tensor:
        return (pixels - torch.tensor(part.mean).view(1, 3, 1, 1)) / torch.tensor(part.std).view(1, 3, 1, 1)

    with torch.no_grad():
        out = hybrid(norm(first))
        torch.testing.assert_close(out[:, :256], first(norm(first)))
        torch.testing.assert_close(out[:, 256:], second(norm(second)), atol=1e-5, rtol=1e-5)


def test_hybrid_bad_parts_and_pretrained_count():
    with pytest.raises(LossbenchError, match="two or more"):
        create_backbone("hybrid:timm:test_vit")
    with pytest.raises(LossbenchError, match="bad parts"):
        create_backbone("hybrid:timm:test_vit+test_efficientnet")
    with pytest.raises(LossbenchError, match="names 3 weights but .* has 2 parts"):
        create_backbone("hybrid:timm:test_vit+timm:test_efficientnet", "a+b+c")


# ------------------------------------------------------------------------------------------------ weights


@pytest.mark.parametrize(
    ("spec", "tag", "hint"),
    [
        ("timm:resnet18", "timm", "hf download timm/resnet18.a1_in1k"),
        ("timm:resnet18.tv_in1k", "default", "hf download timm/resnet18.tv_in1k"),
        ("open_clip:ViT-B-32", "openai", "hf download timm/vit_base_patch32_clip_224.openai"),
        ("hybrid:timm:test_vit+open_clip:ViT-B-32", "+openai", "hf download timm/vit_base_patch32_clip_224.openai"),
    ],
)
def test_missing_cached_weights_error_says_how_to_provide_them(spec, tag, hint):
    start = time.perf_counter()
    with pytest.raises(LossbenchError) as info:
        create_backbone(spec, tag, 32)
    message = str(info.value)
    assert "never downloads" in message and "model.pretrained=/path/to/" in message
    assert hint in message
    assert time.perf_counter() - start < 30  # no network retries behind the error


@pytest.mark.parametrize(
    ("spec", "tag", "pattern"),
    [
        ("timm:resnet18", "bogus", r"known tags for resnet18: .*'tv_in1k'"),
        ("timm:resnet18.tv_in1k", "a1_in1k", "conflicts with the tag"),
        ("open_clip:ViT-B-32", "bogus", r"known tags: .*'laion2b_s34b_b79k'"),
        ("timm:test_efficientnet", "/no/such/weights.safetensors", "does not exist"),
        ("timm:test_efficientnet", "weights.pt", "does not exist"),
    ],
)
def test_bad_pretrained_values(spec, tag, pattern):
    with pytest.raises(LossbenchError, match=pattern):
        create_backbone(spec, tag, 32)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_weights_from_local_file(tmp_path, suffix):
    torch.manual_seed(1)
    source = timm.create_model("test_efficientnet", num_classes=10)  # classifier is dropped on load
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    expected = {k: v for k, v in _state(source).items() if not k.startswith("classifier.")}

    torch.manual_seed(2)
    loaded = create_backbone("timm:test_efficientnet", str(path), 32)
    torch.manual_seed(2)
    random = create_backbone("timm:test_efficientnet", None, 32)
    assert _same(_state(loaded.body), expected)
    assert not _same(_state(random.body), expected)
    assert loaded.body.pretrained_cfg["file"] == str(path) and "state_dict" not in loaded.body.pretrained_cfg


def test_unreadable_weights_file_is_rejected(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(LossbenchError, match="cannot read weights file"):
        create_backbone("timm:test_efficientnet", str(path), 32)


def test_timm_weights_file_of_other_model_is_rejected(tmp_path):
    path = tmp_path / "vit.pth"
    torch.save(timm.create_model("test_vit", num_classes=0).state_dict(), path)
    with pytest.raises(LossbenchError, match="does not fit timm model 'test_efficientnet'"):
        create_backbone("timm:test_efficientnet", str(path), 32)


def test_timm_tag_resolved_from_local_hf_cache(tmp_path):
    torch.manual_seed(3)
    source = timm.create_model("test_efficientnet", num_classes=0)
    snapshot = tmp_path / "hf" / "models--timm--test_efficientnet.r160_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file(source.state_dict(), str(snapshot / "model.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")

    loaded = create_backbone("timm:test_efficientnet", "timm", 32)
    assert _same(_state(loaded.body), _state(source))


def test_open_clip_weights_from_local_file(tiny_clip_weights, monkeypatch):
    source = torch.load(tiny_clip_weights, weights_only=True)
    torch.manual_seed(5)
    loaded = create_backbone("open_clip:lossbench-tiny-text", tiny_clip_weights, 32)
    assert loaded.num_features == TINY_TEXT_CLIP["embed_dim"]
    visual = {k.removeprefix("visual."): v for k, v in source.items() if k.startswith("visual.")}
    assert _same(_state(loaded.body), visual)
    assert loaded(torch.randn(2, 3, 32, 32)).shape == (2, TINY_TEXT_CLIP["embed_dim"])

    wider = {**TINY_TEXT_CLIP, "vision_cfg": {**TINY_TEXT_CLIP["vision_cfg"], "width": 48}}
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "lossbench-tiny-wide", wider)
    with pytest.raises(LossbenchError, match="cannot load weights file .* into open_clip model 'lossbench-tiny-wide'"):
        create_backbone("open_clip:lossbench-tiny-wide", tiny_clip_weights, 32)


# --------------------------------------------------------------------------------------------------- head


@pytest.mark.parametrize("hidden", [0, 32])
def test_head_output_is_unit_norm(hidden):
    torch.manual_seed(0)
    head = ProjectionHead(20, 8, hidden=hidden, dropout=0.2)
    out = head(torch.randn(6, 20) * 50)
    assert out.shape == (6, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(6))
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == (1 if hidden == 0 else 2)


def test_normalise_head_has_no_weights_and_normalises():
    head = NormaliseHead(5)
    features = torch.tensor([[3.0, 4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 2.0]])
    torch.testing.assert_close(head(features), torch.tensor([[0.6, 0.8, 0, 0, 0], [0, 0, 0, 0, 1.0]]))
    assert head.embed_dim == 5 and not list(head.parameters())


# ------------------------------------------------------------------------------------------------- model


def _train_steps(model: EmbeddingModel, steps: int = 3) -> None:
    optimizer = torch.optim.SGD(model.param_groups(0.5), lr=0.5)
    model.train()
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        images = torch.randn(8, 3, 32, 32, generator=generator)
        loss = -model(images)[:, 0].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _model(freeze: bool) -> EmbeddingModel:
    torch.manual_seed(0)
    backbone = create_backbone("timm:test_efficientnet", None, 32)  # has BatchNorm layers
    return EmbeddingModel(backbone, ProjectionHead(backbone.num_features, 16, hidden=32, dropout=0.0), freeze=freeze)


def test_frozen_backbone_is_bit_identical_and_head_trains():
    model = _model(freeze=True)
    backbone_before, head_before = _state(model.backbone), _state(model.head)
    _train_steps(model)
    assert model.training and model.head.training and not model.backbone.training
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert _same(_state(model.backbone), backbone_before)  # weights and BN running stats
    assert not _same(_state(model.head), head_before)
    features = model.features(torch.randn(2, 3, 32, 32))
    assert not features.requires_grad
    assert [g["name"] for g in model.param_groups(1e-3, 1e-4)] == ["head"]


def test_unfrozen_backbone_trains_with_its_own_lr():
    model = _model(freeze=False)
    backbone_before = _state(model.backbone)
    _train_steps(model)
    assert model.backbone.training
    after = _state(model.backbone)
    changed = [k for k in after if not torch.equal(after[k], backbone_before[k])]
    assert any(k.endswith("running_mean") for k in changed) and any(k.endswith(".weight") for k in changed)
    groups = {g["name"]: g for g in model.param_groups(1e-3, 1e-4)}
    assert groups["head"]["lr"] == 1e-3 and groups["backbone"]["lr"] == 1e-4
    assert len(groups["backbone"]["params"]) == len(list(model.backbone.parameters()))


def test_embed_features_matches_forward_and_baseline_is_normalised_backbone():
    model = _model(freeze=True).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        feats = model.backbone(images)
        torch.testing.assert_close(model(images), model.embed_features(feats))
        baseline = EmbeddingModel(model.backbone, NormaliseHead(model.backbone.num_features), freeze=True)(images)
    torch.testing.assert_close(baseline, feats / feats.norm(dim=1, keepdim=True))
    assert model.embed_dim == 16
