"""params.yaml validation: every mistake names the key, the bad value and what is allowed."""

from pathlib import Path

import pytest
import yaml

from lossbench.config import load_params, parse_params
from lossbench.errors import LossbenchError

ROOT = Path(__file__).resolve().parents[1]


def default_raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def with_change(path: str, value) -> dict:
    raw = default_raw()
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return raw


def test_project_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.loss in params.losses
    assert [s.name for s in params.loss_specs()] == list(params.losses)
    assert params.train.augment.hflip is True


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("train.epoch", 3, r"unknown key 'train.epoch'.*Did you mean 'epochs'"),
        ("train.epochs", "ten", r"'train.epochs' = 'ten' has the wrong type; expected an integer"),
        ("train.epochs", 2.5, r"'train.epochs' = 2.5 has the wrong type"),
        ("model.freeze", "yes", r"'model.freeze' = 'yes' has the wrong type; expected true/false"),
        ("train.lr", 0, r"'train.lr' = 0.0 is out of range"),
        ("model.dropout", 1.5, r"'model.dropout' = 1.5 is out of range; allowed: \[0.0, 0.95\]"),
        ("train.monitor", "val_top3", r"'train.monitor' = 'val_top3' is not allowed; choose one of"),
        ("loss", "clip2", r"headline 'loss' = 'clip2' is not one of the configured losses"),
        ("model.backbone", "resnet18", r"must look like '<family>:<name>'"),
        ("model.backbone", "keras:resnet18", r"unknown backbone family 'keras'"),
        ("data.test_ids", 0.9, r"leaves no identities for training"),
        ("evaluate.topk", [0, 5], r"'evaluate.topk'"),
        ("data", [1, 2], r"'data' must be a mapping"),
    ],
)
def test_bad_values_are_named(path, value, expected):
    with pytest.raises(LossbenchError, match=expected):
        parse_params(with_change(path, value))


def test_unknown_loss_type_lists_known_losses():
    with pytest.raises(LossbenchError, match=r"unknown loss type 'arcfase'.*Did you mean 'arcface'.*Known losses:"):
        parse_params(with_change("losses.arcfase", {"scale": 30.0}))


def test_unknown_and_mistyped_loss_options():
    with pytest.raises(LossbenchError, match=r"unknown option 'losses.triplet.marg'.*Did you mean 'margin'"):
        parse_params(with_change("losses.triplet", {"marg": 0.3}))
    with pytest.raises(LossbenchError, match=r"'losses.clip.learnable_temperature' = 'no' has the wrong type"):
        parse_params(with_change("losses.clip", {"learnable_temperature": "no"}))


@pytest.mark.parametrize(("entry", "change", "pattern"), [
    ("losses.triplet", {"mining": "hardest"}, r"'losses.triplet': .*mining='hardest' must be one of 'all', 'hard'"),
    ("losses.triplet", {"margin": -0.1}, r"'losses.triplet': .*margin=-0.1 must be >= 0"),
    ("losses.clip", {"pairs": "txt"}, r"'losses.clip': .*pairs='txt' must be one of 'image', 'text'"),
    ("losses.clip", {"pairs": "text"}, r"'losses.clip': image–text pairs need the text tower of an open_clip model, "
                                       r"but model.backbone is 'timm:test_resnet'"),
    ("losses.clip", {"pairs": "text", "prompt": "a face", "model": {"backbone": "open_clip:ViT-B-32"}},
     r"'losses.clip': .*prompt 'a face' has no '\{\}'"),
])
def test_loss_option_choices_bounds_and_setup_are_checked_when_params_load(entry, change, pattern):
    with pytest.raises(LossbenchError, match=pattern):
        parse_params(with_change(entry, change))


def test_image_text_clip_with_an_open_clip_backbone_is_accepted():
    raw = with_change("losses.clip", {"pairs": "text", "model": {"backbone": "open_clip:ViT-B-32"}})
    assert parse_params(raw).resolve_loss("clip").options["pairs"] == "text"


def test_per_loss_overrides_merge_over_global_sections():
    raw = with_change("losses.triplet", {"margin": 0.3, "model": {"freeze": True, "dropout": 0.0},
                                         "train": {"ids_per_batch": 8, "augment": {"hflip": False}}})
    params = parse_params(raw)
    triplet = params.resolve_loss("triplet")
    arcface = params.resolve_loss("arcface")
    assert triplet.options["margin"] == 0.3
    assert triplet.model.freeze is True and triplet.model.dropout == 0.0
    assert triplet.train.ids_per_batch == 8 and triplet.train.augment.hflip is False
    assert triplet.train.augment.color_jitter == params.train.augment.color_jitter  # untouched keys kept
    assert arcface.model.freeze is params.model.freeze and arcface.train.ids_per_batch == params.train.ids_per_batch


def test_override_errors_name_the_per_loss_key():
    with pytest.raises(LossbenchError, match=r"'losses.arcface.train.epochs' = -1 is out of range"):
        parse_params(with_change("losses.arcface", {"train": {"epochs": -1}}))


def test_renamed_entry_with_explicit_type():
    raw = with_change("losses.triplet_hard", {"type": "triplet", "mining": "batch_hard"})
    spec = parse_params(raw).resolve_loss("triplet_hard")
    assert spec.type == "triplet" and spec.options["mining"] == "batch_hard"


def test_numbers_written_in_yaml_exponent_form_are_accepted():
    raw = with_change("train.lr", "1e-3")  # PyYAML reads 1e-3 as a string
    assert parse_params(raw).train.lr == pytest.approx(1e-3)


def test_missing_params_file(tmp_path):
    with pytest.raises(LossbenchError, match="not found"):
        load_params(tmp_path / "params.yaml")
