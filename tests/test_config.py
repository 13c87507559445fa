"""params.yaml validation: every mistake names the key, the bad value and what is allowed; every key is required."""

import copy
import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from lossbench.config.loss_options import LOSS_OPTIONS
from lossbench.config.params import LOSS_ENTRY_KEYS, Params, load_params, parse_params
from lossbench.core.errors import LossbenchError

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


def without(raw: dict, path: tuple[str, ...]) -> dict:
    raw = copy.deepcopy(raw)
    node = raw
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return raw


def required_leaves(tree: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf key of params.yaml; under `losses` the entries' options (which losses to run is a choice)."""
    leaves = []
    for key, value in tree.items():
        path = (*prefix, key)
        if prefix == ("losses",):
            leaves += [(*path, option) for option in (value or {}) if option not in LOSS_ENTRY_KEYS]
        elif isinstance(value, dict) and value:
            leaves.append(path)  # the whole section, then each key in it
            leaves += required_leaves(value, path)
        else:
            leaves.append(path)
    return leaves


def test_project_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.loss in params.losses
    assert [s.name for s in params.loss_specs()] == list(params.losses)
    assert params.train.augment.hflip is True
    assert params.seeds == [0, 1, 2] and params.seed == 0
    assert (params.stats.resamples, params.stats.confidence, params.stats.min_events) == (2000, 0.95, 10)


LEAVES = required_leaves(default_raw())


def schema_paths(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key the dataclasses read, sections included (what LEAVES must be, independently derived)."""
    paths = []
    for name, tp in typing.get_type_hints(cls).items():
        paths.append((*prefix, name))
        if dataclasses.is_dataclass(tp):
            paths += schema_paths(tp, (*prefix, name))
    return paths


def test_leaves_are_every_key_the_code_reads():
    expected = set(schema_paths(Params))
    for name, entry in default_raw()["losses"].items():
        schema = LOSS_OPTIONS[(entry or {}).get("type", name)]
        expected |= {("losses", name, f.name) for f in dataclasses.fields(schema)}
    assert set(LEAVES) == expected
    assert {("seeds",), ("stats", "min_events"), ("losses", "arcface", "weights_lr_mult")} <= set(LEAVES)


@pytest.mark.parametrize("path", LEAVES, ids=".".join)
def test_every_missing_key_is_an_error_naming_it(tmp_path, path):
    """No defaults in code: deleting any key of params.yaml stops the load with a message naming the full key."""
    file = tmp_path / "params.yaml"
    file.write_text(yaml.safe_dump(without(default_raw(), path), sort_keys=False))
    with pytest.raises(LossbenchError, match=rf"params: .*'{'.'.join(path)}'.* missing; add (it|them) to params.yaml"):
        load_params(file)


def test_missing_loss_options_are_listed_together_with_their_types():
    with pytest.raises(
        LossbenchError,
        match=r"params: 'losses.arcface.margin', 'losses.arcface.weights_lr_mult' are "
        r"missing; add them to params.yaml \(margin: a number >= 0 and < 1.5708; "
        r"weights_lr_mult: a number > 0\)",
    ):
        parse_params(with_change("losses.arcface", {"scale": 30.0}))


def test_params_yaml_lists_every_option_of_every_configured_loss():
    for name, entry in default_raw()["losses"].items():
        entry = entry or {}
        schema = LOSS_OPTIONS[entry.get("type", name)]
        given = set(entry) - set(LOSS_ENTRY_KEYS)
        assert given == {f.name for f in dataclasses.fields(schema)}, name


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("train.epoch", 3, r"unknown key 'train.epoch'. Did you mean 'epochs'\? Allowed keys: epochs, "),
        ("train.epochs", "ten", r"params: 'train.epochs' = 'ten' must be an integer >= 1\.$"),
        ("train.epochs", 2.5, r"'train.epochs' = 2.5 must be an integer"),
        ("model.freeze", "yes", r"'model.freeze' = 'yes' must be true/false"),
        ("train.lr", 0, r"'train.lr' = 0 must be > 0 and <= 10\.$"),
        ("train.lr", "fast", r"'train.lr' = 'fast' must be a number > 0 and <= 10"),
        ("model.dropout", 1.5, r"'model.dropout' = 1.5 must be >= 0 and <= 0.95"),
        ("model.input_size", 8, r"'model.input_size' = 8 must be >= 16 and <= 1024"),
        ("model.input_size", "big", r"'model.input_size' = 'big' must be an integer >= 16 and <= 1024"),
        (
            "train.monitor",
            "val_map",
            r"'train.monitor' = 'val_map' must be one of 'val_top1', 'val_top5', 'val_mAP'\. "
            r"Did you mean 'val_mAP'\?",
        ),
        ("loss", "clip2", r"headline 'loss' = 'clip2' is not one of the configured losses"),
        ("model.backbone", "resnet18", r"'model': backbone 'resnet18' must look like '<family>:<name>'"),
        ("model.backbone", "keras:resnet18", r"unknown backbone family 'keras'"),
        ("data.test_ids", 0.9, r"'data': val_ids \+ test_ids = 1.05 leaves no identities for training"),
        ("data.folds", -1, r"'data.folds' = -1 must be >= 0\.$"),
        ("data.query_domain_missing", "drop", r"'data.query_domain_missing' = 'drop' must be one of 'random', 'train'"),
        ("data.max_image_pixels", 0, r"'data.max_image_pixels' = 0 must be >= 1\.$"),
        ("data.folds", 2.0, r"'data.folds' = 2.0 must be an integer >= 0"),
        ("data.folds", 1, r"'data': folds = 1 would put every identity in test; use folds: 0 .* or folds >= 2"),
        ("data.fold", -1, r"'data.fold' = -1 must be >= 0\.$"),
        (
            "data.fold",
            2,
            r"'data': fold = 2 needs folds > 2 \(folds: 0 means no folds, and then fold must be 0\); "
            r"e.g. `dvc exp run -S data.folds=5 -S data.fold=2`",
        ),
        ("evaluate.topk", [0, 5], r"'evaluate.topk\[0\]' = 0 must be >= 1"),
        ("index.train_size", 0, r"'index.train_size' = 0 must be >= 1\.$"),
        ("index.train_size", "all", r"'index.train_size' = 'all' must be an integer >= 1 or null"),
        ("evaluate.topk", [], r"'evaluate.topk' = \[\] must be a list of integers >= 1, at least 1 of them"),
        ("evaluate.far", [1e-3, 1.0], r"'evaluate.far\[1\]' = 1.0 must be > 0 and < 1"),
        ("train.augment.crop_scale", [0.9, 0.8], r"'train.augment': crop_scale = \[0.9, 0.8\] must be \[min, max\]"),
        ("train.augment.crop_scale", [0.0, 1.0], r"'train.augment.crop_scale\[0\]' = 0.0 must be > 0 and <= 1"),
        (
            "train.augment.crop_scale",
            [0.5],
            r"'train.augment.crop_scale' = \[0.5\] must be a list of numbers > 0 and "
            r"<= 1, exactly 2 of them",
        ),
        ("train.augment.color_jitter", -0.1, r"'train.augment.color_jitter' = -0.1 must be >= 0 and <= 1"),
        ("data", [1, 2], r"'data' = \[1, 2\] must be a mapping of original, image_size, "),
        ("seeds", [0, 1, 1], r"'seeds' = \[0, 1, 1\] must be a list of integers >= 0, at least 1 of them, no repeats"),
        ("seeds", [], r"'seeds' = \[\] must be a list of integers >= 0, at least 1 of them"),
        ("seeds", [0, -1], r"'seeds\[1\]' = -1 must be >= 0"),
        ("seeds", 3, r"'seeds' = 3 must be a list of integers"),
        ("stats.resamples", 99, r"'stats.resamples' = 99 must be >= 100"),
        ("stats.confidence", 1, r"'stats.confidence' = 1 must be > 0 and < 1"),
        ("stats.min_events", 0, r"'stats.min_events' = 0 must be >= 1"),
        ("stats.resampels", 2000, r"unknown key 'stats.resampels'. Did you mean 'resamples'\?"),
    ],
)
def test_bad_values_are_named(path, value, expected):
    with pytest.raises(LossbenchError, match=expected):
        parse_params(with_change(path, value))


def with_data(**values) -> dict:
    raw = default_raw()
    raw["data"].update(values)
    return raw


def test_identity_folds_are_checked_together_and_replace_test_ids():
    """folds > 0: fold must be one of the folds; the test share is 1/folds and test_ids is not used (not even in
    the sum check), so `-S data.folds=K -S data.fold=k` works whatever test_ids says."""
    default = load_params(ROOT / "params.yaml").data
    assert (default.folds, default.fold, default.test_share) == (0, 0, default.test_ids)
    data = parse_params(with_data(folds=5, fold=4, test_ids=0.9, val_ids=0.15)).data
    assert (data.folds, data.fold, data.test_share) == (5, 4, 0.2)
    with pytest.raises(LossbenchError, match=r"'data': fold = 5 is not one of the 5 folds; use 0 <= fold <= 4\."):
        parse_params(with_data(folds=5, fold=5))
    with pytest.raises(
        LossbenchError,
        match=r"params: 'data': val_ids \+ 1/folds = 1 leaves no identities for "
        r"training; lower val_ids or raise folds\.",
    ):
        parse_params(with_data(folds=2, fold=0, val_ids=0.5))


def test_unknown_loss_type_lists_known_losses():
    with pytest.raises(LossbenchError, match=r"unknown loss type 'arcfase'.*Did you mean 'arcface'.*Known losses:"):
        parse_params(with_change("losses.arcfase", {"scale": 30.0}))


def test_unknown_and_mistyped_loss_options():
    with pytest.raises(
        LossbenchError,
        match=r"unknown key 'losses.triplet.marg'. Did you mean 'margin'\? "
        r"Allowed keys: margin, mining, type, model, train, tune\.",
    ):
        parse_params(with_change("losses.triplet.marg", 0.3))
    with pytest.raises(LossbenchError, match=r"unknown key 'losses.arcface.traim'. Did you mean 'train'\?"):
        parse_params(with_change("losses.arcface.traim", {"epochs": 3}))
    with pytest.raises(LossbenchError, match=r"'losses.clip.learnable_temperature' = 'no' must be true/false"):
        parse_params(with_change("losses.clip.learnable_temperature", "no"))
    with pytest.raises(LossbenchError, match=r"'losses.arcface' = 3 must be a mapping"):
        parse_params(with_change("losses.arcface", 3))


@pytest.mark.parametrize(
    ("path", "value", "pattern"),
    [
        (
            "losses.triplet.mining",
            "hardest",
            r"params: 'losses.triplet.mining' = 'hardest' must be one of 'all', 'hard', "
            r"'semihard', 'batch_hard', 'none'\. Did you mean 'hard'\?",
        ),
        ("losses.triplet.margin", -1, r"params: 'losses.triplet.margin' = -1 must be >= 0\.$"),
        ("losses.center_ce.label_smoothing", 1.0, r"'losses.center_ce.label_smoothing' = 1.0 must be >= 0 and < 1"),
        ("losses.clip.pairs", "txt", r"'losses.clip.pairs' = 'txt' must be one of 'image', 'text'"),
        (
            "losses.clip.pairs",
            "text",
            r"'losses.clip': image–text pairs need the text tower of an open_clip model, "
            r"but model.backbone is 'timm:tf_efficientnet_lite0'",
        ),
    ],
)
def test_loss_option_choices_bounds_and_setup_are_checked_when_params_load(path, value, pattern):
    with pytest.raises(LossbenchError, match=pattern):
        parse_params(with_change(path, value))


def test_clip_prompt_without_placeholder_is_named():
    raw = with_change("losses.clip.pairs", "text")
    raw["losses"]["clip"].update(prompt="a face", model={"backbone": "open_clip:ViT-B-32"})
    with pytest.raises(LossbenchError, match=r"params: 'losses.clip': prompt 'a face' has no '\{\}'"):
        parse_params(raw)


def test_image_text_clip_with_an_open_clip_backbone_is_accepted():
    raw = with_change("losses.clip.pairs", "text")
    raw["losses"]["clip"]["model"] = {"backbone": "open_clip:ViT-B-32"}
    assert parse_params(raw).resolve_loss("clip").options["pairs"] == "text"


def test_per_loss_overrides_merge_over_global_sections():
    raw = with_change(
        "losses.triplet",
        {
            "margin": 0.3,
            "mining": "semihard",
            "model": {"freeze": True, "dropout": 0.0},
            "train": {"ids_per_batch": 8, "augment": {"hflip": False}},
        },
    )
    params = parse_params(raw)
    triplet = params.resolve_loss("triplet")
    arcface = params.resolve_loss("arcface")
    assert triplet.options["margin"] == 0.3
    assert triplet.model.freeze is True and triplet.model.dropout == 0.0
    assert triplet.train.ids_per_batch == 8 and triplet.train.augment.hflip is False
    assert triplet.train.augment.color_jitter == params.train.augment.color_jitter  # untouched keys kept
    assert arcface.model.freeze is params.model.freeze and arcface.train.ids_per_batch == params.train.ids_per_batch


def test_override_errors_name_the_per_loss_key():
    with pytest.raises(LossbenchError, match=r"params: 'losses.arcface.train.epochs' = -1 must be >= 1\.$"):
        parse_params(with_change("losses.arcface.train", {"epochs": -1}))
    with pytest.raises(LossbenchError, match=r"unknown key 'losses.arcface.model.freez'. Did you mean 'freeze'\?"):
        parse_params(with_change("losses.arcface.model", {"freez": True}))
    with pytest.raises(LossbenchError, match=r"'losses.arcface.model': backbone 'resnet18' must look like"):
        parse_params(with_change("losses.arcface.model", {"backbone": "resnet18"}))
    with pytest.raises(LossbenchError, match=r"'losses.arcface.train.augment': crop_scale = \[0.9, 0.5\]"):
        parse_params(with_change("losses.arcface.train", {"augment": {"crop_scale": [0.9, 0.5]}}))


def test_renamed_entry_with_explicit_type():
    raw = with_change("losses.triplet_hard", {"type": "triplet", "margin": 0.2, "mining": "batch_hard"})
    spec = parse_params(raw).resolve_loss("triplet_hard")
    assert spec.type == "triplet" and spec.options["mining"] == "batch_hard"


def test_renamed_entry_needs_every_option_of_its_type():
    with pytest.raises(
        LossbenchError,
        match=r"'losses.triplet_hard.margin' is missing; add it to params.yaml "
        r"\(margin: a number >= 0\)",
    ):
        parse_params(with_change("losses.triplet_hard", {"type": "triplet", "mining": "batch_hard"}))


def test_numbers_are_converted_where_yaml_is_unambiguous():
    raw = with_change("train.lr", "1e-3")  # PyYAML reads 1e-3 as a string
    raw["losses"]["arcface"]["scale"] = 32  # an integer where a number is expected
    params = parse_params(raw)
    assert params.train.lr == pytest.approx(1e-3)
    assert params.resolve_loss("arcface").options["scale"] == 32.0
    assert isinstance(params.resolve_loss("arcface").options["scale"], float)


def test_missing_params_file(tmp_path):
    with pytest.raises(LossbenchError, match="not found"):
        load_params(tmp_path / "params.yaml")
