"""Presets: each resolves into valid params with the source projects' settings, the printed `dvc exp run`
command and `--apply` give the same params, each model builds and runs at a tiny size with random weights,
and missing pretrained weights fail clearly without touching the network."""

from __future__ import annotations

import copy
import dataclasses
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from lossbench.apps.cli import main
from lossbench.config.presets import apply_preset, list_presets, resolve
from lossbench.core.errors import LossbenchError
from lossbench.models import create_backbone
from lossbench.models.builder import build_model

ROOT = Path(__file__).resolve().parents[1]
PRESETS = list_presets()
CENTER = {
    "resnet50-center": ("timm:resnet50", 512, 2048),
    "resnet101-center": ("timm:resnet101", 4096, 2048),
    "resnet101-swin-hybrid": ("hybrid:timm:resnet101+timm:swin_tiny_patch4_window7_224", 8192, 2048 + 768),
}
"""backbone, embedding size and pooled feature width (ResNet: 2048; Swin-T: 768) of the center-loss presets."""
CLIP_TABLE = {  # loss: (frozen, batch size, epochs, weight decay, dropout) — the source project's table
    "triplet": (True, 64, 45, 1e-4, 0.0),
    "clip": (True, 64, 21, 1e-4, 0.3),
    "arcface": (False, 128, 38, 1e-4, 0.3),
    "contrastive": (True, 64, 45, 1e-4, 0.3),
}


@pytest.fixture
def params_file(tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    return path


def test_the_four_presets_exist():
    assert set(PRESETS) == {"clip-vit-b32", *CENTER}


def test_clip_preset_has_the_source_table(params_file):
    params = resolve("clip-vit-b32", params_file).params
    model = params.model
    assert (model.backbone, model.pretrained, model.input_size) == ("open_clip:ViT-B-32", "openai", 224)
    assert set(params.losses) == {"baseline", *CLIP_TABLE} and params.loss in params.losses
    for name, expected in CLIP_TABLE.items():
        spec = params.resolve_loss(name)
        batch = spec.train.ids_per_batch * spec.train.images_per_id
        assert (spec.model.freeze, batch, spec.train.epochs, spec.train.weight_decay, spec.model.dropout) == expected
    assert params.resolve_loss("clip").options["pairs"] == "text"  # image–prompt pairs, as the source project


def test_clip_preset_prompts_encode_with_the_vit_b32_text_tower(params_file):
    from lossbench.losses import LossContext, create_loss

    spec = resolve("clip-vit-b32", params_file).params.resolve_loss("clip")
    names = ("Ada_Lovelace", "Alan_Turing", "Grace_Hopper")
    context = LossContext(class_names=names, backbone=spec.model.backbone, pretrained=None)  # random weights
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="randomly initialised text tower"):
        loss = create_loss(spec.type, len(names), spec.model.embed_dim, context=context, **spec.options)
    assert loss.text_features.shape == (3, 512)  # ViT-B/32 text embedding width
    embeddings = torch.nn.functional.normalize(torch.randn(6, spec.model.embed_dim), dim=1)
    assert torch.isfinite(loss(embeddings, torch.tensor([0, 1, 2, 0, 1, 2])))


@pytest.mark.parametrize("name", list(CENTER))
def test_center_presets(params_file, name):
    params = resolve(name, params_file).params
    backbone, embed_dim, _ = CENTER[name]
    assert set(params.losses) == {"baseline", "center_ce", "arcface_center"} and params.loss == "arcface_center"
    for spec in params.loss_specs():
        assert (spec.model.backbone, spec.model.embed_dim, spec.model.pretrained) == (backbone, embed_dim, "timm")


def overlay(base: dict, preset: dict) -> dict:
    """Independent reference of the preset semantics: deep overlay, losses restricted to the preset's."""
    out = copy.deepcopy(base)
    out["losses"] = {name: out["losses"].get(name) or {} for name in preset["losses"]}

    def merge(target: dict, updates: dict) -> None:
        for key, value in updates.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value)  # an empty mapping changes nothing
            else:
                target[key] = copy.deepcopy(value)

    merge(out, preset)
    return out


@pytest.mark.parametrize("name", list(PRESETS))
def test_printed_command_and_apply_give_the_reference_params(params_file, name, capsys):
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` runs on params.yaml

    original = yaml.safe_load(params_file.read_text())
    expected = overlay(original, PRESETS[name].params)
    assert main(["preset", name, "--params", str(params_file)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("dvc exp run \\\n  -S ")
    # the arguments exactly as a shell passes them to dvc
    shell = subprocess.run(
        ["bash", "-c", printed.replace("dvc exp run", "printf '%s\\0'", 1)], capture_output=True, text=True, check=True
    )
    words = shell.stdout.split("\0")[:-1]
    assert words[::2] == ["-S"] * (len(words) // 2)
    via_dvc = params_file.with_name("via_dvc.yaml")
    shutil.copy(params_file, via_dvc)
    apply_overrides(via_dvc, words[1::2])
    assert yaml.safe_load(via_dvc.read_text()) == expected

    assert main(["preset", name, "--apply", "--params", str(params_file)]) == 0
    text = params_file.read_text()
    assert yaml.safe_load(text) == expected
    assert "# headline loss" in text  # comments survive


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_list_every_option_of_their_losses(name):
    """Loss options have no defaults: a preset gives all of them, so it does not depend on params.yaml's losses."""
    from lossbench.config.loss_options import LOSS_OPTIONS
    from lossbench.config.params import LOSS_ENTRY_KEYS

    for loss, entry in PRESETS[name].params["losses"].items():
        entry = entry or {}
        schema = LOSS_OPTIONS[entry.get("type", loss)]
        assert set(entry) - set(LOSS_ENTRY_KEYS) == {f.name for f in dataclasses.fields(schema)}, loss


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_apply_to_params_configuring_other_losses(params_file, name):
    raw = yaml.safe_load(params_file.read_text())
    raw.update(loss="baseline", losses={"baseline": {}, "supcon": raw["losses"]["supcon"]})
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = resolve(name, params_file).params
    assert set(params.losses) == set(PRESETS[name].params["losses"])


def test_apply_refuses_invalid_params_and_leaves_the_file(params_file, tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "bad.yaml").write_text(
        "description: too much dropout\nparams:\n  model: {dropout: 2.0}\n  losses: {baseline: {}}\n  loss: baseline\n"
    )
    before = params_file.read_text()
    with pytest.raises(LossbenchError, match=r"preset 'bad' does not give valid params: .*'model.dropout' = 2.0"):
        apply_preset("bad", params_file, presets)
    assert params_file.read_text() == before


def test_list_and_unknown_names(capsys):
    assert main(["preset", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(PRESETS)
    assert all(len(line.split(None, 1)[1]) > 20 for line in lines)
    assert main(["preset", "clip-vit-b16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown preset 'clip-vit-b16'. Did you mean 'clip-vit-b32'?") and err.count("\n") == 1


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_model_runs_at_a_tiny_size_with_random_weights(params_file, name):
    params = resolve(name, params_file).params
    headline = params.resolve_loss(params.loss).model
    architecture = ("backbone", "embed_dim", "hidden", "input_size")
    for spec in params.loss_specs():  # per-loss overrides only change freeze/dropout: one build covers all
        assert [getattr(spec.model, f) for f in architecture] == [getattr(headline, f) for f in architecture]
    tiny = dataclasses.replace(headline, pretrained=None, input_size=32)
    model = build_model(tiny, 32, 0, 1, "mlp").eval()
    expected_features = CENTER[name][2] if name in CENTER else 512  # ViT-B/32 image embedding: 512
    with torch.no_grad():
        images = torch.randn(2, 3, 32, 32)
        embeddings, features = model(images), model.features(images)
    assert embeddings.shape == (2, headline.embed_dim) and features.shape == (2, expected_features)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(2))


@pytest.fixture
def offline_empty_caches(tmp_path, monkeypatch):
    """Empty weight caches, and any network connection attempt fails the test."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", list(PRESETS))
def test_missing_pretrained_weights_fail_clearly_offline(params_file, name, offline_empty_caches):
    model = resolve(name, params_file).params.model
    with pytest.raises(
        LossbenchError,
        match=r"not in the local cache, and lossbench never downloads.*"
        r"model\.pretrained=/path/to/weights",
    ):
        create_backbone(model.backbone, model.pretrained, 32)
