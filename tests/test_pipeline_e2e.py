"""End to end: `dvc repro`, `dvc exp run -S loss=…`, `dvc metrics diff` in a temporary git repository.

Tiny params (16 synthetic identities at 32 px, timm's test_resnet, 2 epochs) keep it around a minute.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


pytestmark = pytest.mark.e2e


ENV: dict[str, str] = {}


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


def tiny_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text())
    params["synthetic"].update(identities=16, images_per_id=6, image_size=32)
    params["data"].update(image_size=32, val_ids=0.25, test_ids=0.25)
    params["model"].update(backbone="timm:test_resnet", embed_dim=16, hidden=32)
    params["train"].update(epochs=2, ids_per_batch=4, images_per_id=2, feature_views=2, patience=2)
    params["evaluate"].update(examples=2)
    params["losses"] = {"baseline": {}, "arcface": {"scale": 16.0}, "triplet": {"margin": 0.2, "model": {"freeze": True}}}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, copy_project, subprocess_env) -> Path:
    ENV.update(subprocess_env)
    root = copy_project(tmp_path_factory.mktemp("lossbench_e2e"))
    tiny_params(root / "params.yaml")
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    dvc("config", "core.analytics", "false", cwd=root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny project"], root)
    return root


@pytest.fixture(scope="module")
def reproduced(repo: Path) -> str:
    result = dvc("repro", cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline run"], repo)
    return result.stdout


def test_repro_runs_every_stage_and_writes_every_artifact(repo, reproduced):
    expected = {"synthesize", "preprocess", "featurize", "compare", "submit"} | {
        f"{stage}@{loss}" for stage in ("train", "embed", "index", "evaluate") for loss in ("baseline", "arcface", "triplet")}
    assert ran_stages(reproduced) == expected
    for loss in ("baseline", "arcface", "triplet"):
        metrics = json.loads((repo / f"metrics/losses/{loss}.json").read_text())
        assert 0.0 <= metrics["top1"] <= metrics["top5"] <= metrics["top10"] <= 1.0
        assert metrics["score"] == pytest.approx(600 * metrics["top1"] + 300 * metrics["top5"] + 100 * metrics["top10"])
        assert (repo / f"figures/{loss}/retrieval.png").stat().st_size > 0
    table = (repo / "metrics/comparison.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:5]] == ["baseline", "arcface", "triplet"]
    headline = json.loads((repo / "metrics/metrics.json").read_text())
    assert headline["loss"] == "arcface"
    assert dvc("status", cwd=repo).stdout.strip().endswith("Data and pipelines are up to date.")


def test_switching_the_headline_runs_no_training_and_shows_in_metrics_diff(repo, reproduced):
    before = json.loads((repo / "metrics/metrics.json").read_text())
    result = dvc("exp", "run", "-S", "loss=triplet", cwd=repo)
    ran = ran_stages(result.stdout)
    assert ran == {"compare", "submit"}, ran  # the two stages that read the headline `loss`
    after = json.loads((repo / "metrics/metrics.json").read_text())
    triplet = json.loads((repo / "metrics/losses/triplet.json").read_text())
    assert after["loss"] == "triplet" and after["top1"] == triplet["top1"]
    diff = dvc("metrics", "diff", "--json", cwd=repo).stdout
    changes = json.loads(diff)["metrics/metrics.json"]
    changed = {k for k, v in changes.items() if v.get("diff")}
    numeric = {k for k in after if isinstance(after[k], float) and after[k] != before[k]}
    assert numeric and numeric <= changed


def test_a_per_loss_change_reruns_only_that_loss(repo, reproduced):
    result = dvc("exp", "run", "-S", "losses.triplet.margin=0.3", cwd=repo)
    ran = ran_stages(result.stdout)
    assert {"train@triplet", "embed@triplet", "index@triplet", "evaluate@triplet", "compare"} <= ran
    assert not any(stage.endswith(("@arcface", "@baseline")) for stage in ran), ran
    assert not ran & {"synthesize", "preprocess"}  # featurize re-checks its cache key (it reads `losses`) and reuses it


def test_unknown_headline_loss_fails_with_the_configured_list(repo, reproduced):
    result = dvc("exp", "run", "-S", "loss=nope", cwd=repo, check=False)
    assert result.returncode != 0
    assert "is not one of the configured losses: baseline, arcface, triplet" in result.stdout + result.stderr
