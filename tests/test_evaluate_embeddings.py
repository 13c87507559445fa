"""``lossbench evaluate-embeddings``: both protocols, the JSON it writes, and one error line per bad file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lossbench.apps.evaluate_embeddings import main
from lossbench.metrics.ranking import evaluate_retrieval

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 8))
    labels = np.array([f"id{i:02d}" for i in rng.integers(0, 12, 90)])
    codes = np.unique(labels, return_inverse=True)[1]
    x = (centres[codes] + rng.normal(scale=0.8, size=(90, 8))) * 3.0  # not unit norm
    paths = {}
    for name, array in {"q": x[:40], "ql": labels[:40], "g": x[40:], "gl": labels[40:]}.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], array)
    paths["out"] = tmp_path / "metrics.json"
    return paths


def _args(files, *extra, gallery=True):
    args = ["--query", str(files["q"]), "--query-labels", str(files["ql"]), "--out", str(files["out"])]
    if gallery:
        args += ["--gallery", str(files["g"]), "--gallery-labels", str(files["gl"])]
    return args + ["--resamples", "50", *extra]


def test_query_gallery_metrics_and_intervals(files):
    assert main(_args(files, "--topk", "1", "3")) == 0
    doc = json.loads(files["out"].read_text())
    assert (doc["protocol"], doc["queries"], doc["gallery"], doc["input_unit_norm"]) == ("query-gallery", 40, 50, False)
    q, g = np.load(files["q"]), np.load(files["g"])
    ref = evaluate_retrieval(q, np.load(files["ql"]), g, np.load(files["gl"]), topk=(1, 3))
    for key in ("top1", "top3", "score", "mAP", "map_at_r"):
        entry = doc["metrics"][key]
        assert entry["value"] == pytest.approx(ref[key], abs=1e-12)
        assert entry["low"] <= entry["value"] <= entry["high"]
    assert doc["metrics"]["roc_auc"]["low"] < doc["metrics"]["roc_auc"]["high"]
    assert doc["counts"]["num_queries"] == ref["num_queries"]


def test_all_vs_all_through_the_lossbench_command(files):
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench", "evaluate-embeddings", *_args(files, gallery=False)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(files["out"].read_text())
    assert (doc["protocol"], doc["queries"], doc["gallery"]) == ("all-vs-all", 40, 40)
    assert doc["counts"]["num_pairs"] == 40 * 39


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lossbench evaluate-embeddings: error: ")
    return err


def test_missing_file(files, capsys):
    files["q"].unlink()
    assert f"{files['q']}: no such file" in _error(capsys, _args(files))


def test_malformed_file(files, capsys):
    files["g"].write_bytes(b"not numpy")
    assert f"{files['g']}: not a .npy array" in _error(capsys, _args(files))


def test_mismatched_lengths(files, capsys):
    np.save(files["gl"], np.load(files["gl"])[:-1])
    assert f"{files['gl']}: 49 labels for 50 embeddings" in _error(capsys, _args(files))


def test_wrong_ndim(files, capsys):
    np.save(files["q"], np.load(files["q"]).ravel())
    assert f"{files['q']}: embeddings must be a non-empty 2-D array" in _error(capsys, _args(files))
    np.save(files["q"], np.zeros((40, 8)))
    np.save(files["ql"], np.zeros((40, 1)))
    assert f"{files['ql']}: labels must be 1-D" in _error(capsys, _args(files))


def test_nan_values(files, capsys):
    g = np.load(files["g"])
    g[3, 2] = np.nan
    np.save(files["g"], g)
    assert f"{files['g']}: contains NaN or inf values" in _error(capsys, _args(files))


def test_gallery_without_labels(files, capsys):
    argv = _args(files, gallery=False) + ["--gallery", str(files["g"])]
    assert f"{files['g']}: --gallery and --gallery-labels go together" in _error(capsys, argv)


def test_no_shared_identity(files, capsys):
    np.save(files["gl"], np.array([f"other{i}" for i in range(50)]))
    assert f"{files['ql']}: no query has a same-label gallery item" in _error(capsys, _args(files))


def test_truncated_and_object_files(files, capsys):
    files["q"].write_bytes(files["q"].read_bytes()[:200])
    assert f"{files['q']}: malformed .npy array" in _error(capsys, _args(files))
    np.save(files["q"], np.zeros((40, 8)))
    np.save(files["ql"], np.array([object()] * 40), allow_pickle=True)
    assert f"{files['ql']}: holds Python objects" in _error(capsys, _args(files))


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--topk", "0"], "--topk: ranks must be positive"), (["--far", "2"], "--far: rates must be in (0, 1)")],
)
def test_bad_options_name_the_option(files, capsys, option, message):
    assert message in _error(capsys, _args(files, *option))


def test_registered_in_the_lossbench_command():
    from lossbench.apps.cli import build_parser

    assert "evaluate-embeddings" in build_parser().format_help()
