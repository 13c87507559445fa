"""Per-loss tuning (lossbench/tuning): the val split only, same params → same trials, pins and ranges respected,
pruning, tuned values driving the runs, and two workers sharing one journal study."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from tiny_params import tiny_params  # tests/tiny_params.py

from lossbench.config import schema
from lossbench.config.loss_options import LOSS_OPTIONS, Choice, Range, _value_rules, full_space, search_space
from lossbench.config.params import load_params, parse_params
from lossbench.core.errors import LossbenchError
from lossbench.data.store import DIGEST_FILE, IMAGES_FILE, MANIFEST_FILE, file_digest
from lossbench.tuning import study as study_module
from lossbench.tuning.apply import lr_text, options_text, tuned_spec
from lossbench.tuning.figures import best_so_far_plot, forgiveness
from lossbench.tuning.records import StudyRecord, TrialRow, best_file, trials_csv, write_record
from lossbench.tuning.study import tune_loss

ROOT = Path(__file__).resolve().parents[1]
TUNE = {"trials": 4, "seeds": [0], "epochs": 3, "sampler_seed": 0, "startup_trials": 2}


@contextlib.contextmanager
def inside(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def raw_params(pin=None, space=None, **tune) -> dict:
    """params.yaml with ``tune`` keys replaced and per-loss ``pin`` / ``space`` (loss -> value) set in
    ``losses.<loss>.tune``."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["tune"].update(tune)
    for section, by_loss in (("pin", pin or {}), ("space", space or {})):
        for loss, value in by_loss.items():
            raw["losses"].setdefault(loss, {}).setdefault("tune", {})[section] = value
    return raw


@pytest.fixture(scope="module")
def project(tmp_path_factory, copy_project):
    """A tiny project with processed data and a frozen feature cache (triplet and arcface on test_resnet)."""
    root = copy_project(tmp_path_factory.mktemp("tune"))
    tiny_params(root / "params.yaml")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"]["freeze"] = True
    params["losses"]["triplet"].pop("model")
    params["tune"].update(TUNE, pruner={"startup_trials": 1, "warmup_epochs": 0})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with inside(root):
        for stage in ("synthesize", "preprocess", "weights", "featurize"):
            module = __import__(f"stages.{stage}", fromlist=["main"])
            print(module.main())
    return root


def tune_csv(root: Path, loss: str) -> str:
    with inside(root):
        return trials_csv(tune_loss(load_params(), loss))


def test_same_params_same_trials_and_no_test_split(project):
    first = tune_csv(project, "triplet")
    assert len(first.splitlines()) == 1 + TUNE["trials"]
    assert tune_csv(project, "triplet") == first  # same params: byte-identical trials
    with inside(project):  # every test row of the images and of the cached features changes
        manifest = pd.read_csv("data/processed/manifest.csv")
        test_rows = manifest.loc[manifest["split"] == "test", "row"].to_numpy()
        assert len(test_rows)
        images = np.load("data/processed/images.npy")
        images[test_rows] = 255 - images[test_rows]
        np.save("data/processed/images.npy", images)
        digests = {name: file_digest(f"data/processed/{name}") for name in (IMAGES_FILE, MANIFEST_FILE)}
        Path("data/processed", DIGEST_FILE).write_text(json.dumps(digests, indent=2) + "\n")  # re-sealed
        eval_rows, feats = np.load("data/features/eval_rows.npy"), np.load("data/features/eval.npy")
        feats[np.isin(eval_rows, test_rows)] = np.random.default_rng(0).normal(size=feats.shape[1])
        np.save("data/features/eval.npy", feats)
    assert tune_csv(project, "triplet") == first


def test_two_workers_share_one_journal_study(project, tmp_path, subprocess_env):
    root = tmp_path / "shared"
    root.mkdir()
    for name in ("lossbench", "stages", "params.yaml", "data"):
        (root / name).symlink_to(project / name)
    (root / "params.yaml").unlink()
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tune"].update(trials=6, storage=str(tmp_path / "journal.log"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = [sys.executable, "-m", "stages.tune", "triplet"]
    workers = [subprocess.Popen(cmd, cwd=root, env=subprocess_env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert all(out.count("trial ") for out in outputs), outputs  # both workers ran trials
    import optuna

    storage = study_module.make_storage(str(tmp_path / "journal.log"))
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    kept = [t for t in trials if t.number < 6]
    assert len(kept) == 6 and all(t.state.is_finished() for t in kept)
    with inside(root):
        assert len(pd.read_csv("metrics/tuning/triplet.csv")) == 6  # the record is the budget


class FakeData:
    """Stands in for TrialData: no training; the val value per epoch is ``value(values)`` (so pruning is
    predictable) and every spec a trial trains is kept."""

    specs: list = []

    @classmethod
    def load(cls, params, spec, seed):
        return cls()

    def train(self, spec, seed, on_epoch):
        FakeData.specs.append(spec)
        value = float(np.log10(spec.train.lr))  # higher lr, higher value: low-lr trials fall below the median
        for epoch in range(spec.train.epochs):
            on_epoch(epoch, {spec.train.monitor: value})
        return SimpleNamespace(best_value=value)


@pytest.fixture
def fake(monkeypatch):
    FakeData.specs = []
    monkeypatch.setattr(study_module, "TrialData", FakeData)
    return FakeData


def test_pinned_never_varies_and_ranges_hold(fake):
    params = parse_params(
        raw_params(trials=12, epochs=3, pin={"triplet": ["mining"]}, space={"triplet": {"margin": [0.1, 0.3]}})
    )
    record = tune_loss(params, "triplet")
    assert record.settings == ["train.lr", "margin"] and len(record.trials) == 12
    assert {spec.options["mining"] for spec in fake.specs} == {"semihard"}  # params.yaml's value, every trial
    space = search_space("triplet", "triplet", ["mining"], {"margin": [0.1, 0.3]})
    for row in record.trials:
        assert all(space[key].contains(value) for key, value in row.values.items())
    assert {s.train.epochs for s in fake.specs} == {3}  # tune.epochs


@pytest.mark.parametrize("loss", [name for name, cls in LOSS_OPTIONS.items() if cls.trains])
def test_every_trial_inside_the_option_class_ranges(fake, loss):
    raw = raw_params(trials=8)
    raw["losses"] = {"baseline": {}, loss: raw["losses"].get(loss) or _reference(loss)}
    raw["loss"] = loss
    record = tune_loss(parse_params(raw), loss)
    space = full_space(loss)
    assert set(record.settings) == set(space)
    for row in record.trials:
        assert all(space[key].contains(value) for key, value in row.values.items()), row


def _reference(loss: str) -> dict:
    from loss_options import full_options  # tests/loss_options.py

    return full_options(loss)


def test_pruning_prunes_a_prunable_case(fake):
    raw = raw_params(trials=12, epochs=4, pruner={"startup_trials": 2, "warmup_epochs": 1})
    record = tune_loss(parse_params(raw), "contrastive")
    states = [row.state for row in record.trials]
    assert "pruned" in states and "complete" in states
    pruned = [row for row in record.trials if row.state == "pruned"]
    assert all(row.epochs < 4 and row.objective is None for row in pruned)


def test_space_ends_fit_the_option_schemas():
    for loss, cls in LOSS_OPTIONS.items():
        for key, dim in full_space(loss).items():
            tp, rules = _value_rules(loss, key)
            for i, end in enumerate(dim.ends()):
                schema.coerce(end, tp, f"{loss}.{key}[{i}]", rules)
            assert isinstance(dim, Choice) or not dim.log or dim.low > 0
        assert cls.trains or not full_space(loss)
    assert full_space("arcface")["scale"] == Range(1.0, 200.0, log=True)


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        ({"pin": {"arcface": ["margn"]}}, "not tunable"),
        ({"space": {"arcface": {"margin": [0.5, 0.1]}}}, "low < high"),
        ({"space": {"arcface": {"scale": [0.0, 10.0]}}}, "losses.arcface.tune.space.scale[0]"),
        ({"space": {"triplet": {"mining": ["semihard", "hardest"]}}}, "losses.triplet.tune.space.mining[1]"),
        ({"pin": {"arcface": ["margin"]}, "space": {"arcface": {"margin": [0.1, 0.2]}}}, "also pinned"),
    ],
)
def test_tune_section_errors_name_the_key(tune, message):
    with pytest.raises(LossbenchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_params(raw_params(**tune))


@pytest.mark.parametrize(
    ("entry", "message"),
    [({"pins": ["margin"]}, "unknown key 'losses.arcface.tune.pins'"), ("margin", "must be a mapping")],
)
def test_a_loss_tune_entry_takes_only_pin_and_space(entry, message):
    raw = raw_params()
    raw["losses"]["arcface"]["tune"] = entry
    with pytest.raises(LossbenchError, match=message):
        parse_params(raw)


def test_tuned_values_drive_the_runs(tmp_path):
    params = parse_params(raw_params(pin={"arcface": ["margin"]}))
    spec = params.resolve_loss("arcface")
    with inside(tmp_path):
        with pytest.raises(LossbenchError, match="tune@arcface"):
            tuned_spec(params, spec)
        values = {"train.lr": 0.02, "scale": 12.5, "margin": 0.9}  # margin is pinned now: params.yaml's value wins
        record = StudyRecord("arcface", list(values), [TrialRow(0, "complete", 0.5, 3, values)], {"values": values})
        write_record(record)
        assert best_file("arcface").is_file()
        tuned = tuned_spec(params, spec)
        assert (tuned.train.lr, tuned.options["scale"], tuned.options["margin"]) == (0.02, 12.5, 0.3)
        assert options_text(params, spec) == "scale=12.5*, margin=0.3, weights_lr_mult=10"
        assert lr_text(params, spec) == "0.02*"
        untuned = parse_params(raw_params(trials=0))
        assert tuned_spec(untuned, untuned.resolve_loss("arcface")) == untuned.resolve_loss("arcface")
        assert lr_text(untuned, untuned.resolve_loss("arcface")) == untuned.train.lr  # a float: the settings line


def test_best_so_far_plot_and_forgiveness(tmp_path):
    csv = tmp_path / "arcface.csv"
    csv.write_text(
        "number,state,objective,epochs,train.lr\n0,complete,0.2,3,0.01\n1,pruned,,1,0.001\n"
        "2,complete,0.5,3,0.02\n3,complete,0.3,3,0.03\n"
    )
    numbers = forgiveness(csv)
    assert numbers["best"] == 0.5 and numbers["median"] == 0.3 and numbers["complete"] == 3
    assert pytest.approx(numbers["gap"]) == 0.2
    assert best_so_far_plot([csv], tmp_path / "fig" / "best.png").stat().st_size > 0
