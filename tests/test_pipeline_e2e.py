"""End to end: `dvc repro`, `dvc exp run -S loss=…`, `dvc metrics diff` in a temporary git repository.

Tiny params (16 synthetic identities at 32 px, timm's test_resnet, 2 epochs, 3 losses x 2 seeds) keep it to
a few minutes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_params import tiny_params  # tests/tiny_params.py

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]


ENV: dict[str, str] = {}


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


LOSSES = ("baseline", "arcface", "triplet")
STEPS = ("train", "embed", "index", "evaluate")
"""The stages of the runs, in pipeline order: ``train@<loss>-<seed>`` per run, the others per loss (all seeds)."""


def run_stages(losses=LOSSES, seeds=(0, 1), steps=STEPS) -> set[str]:
    """The stages of ``steps`` that cover the runs of ``losses`` x ``seeds``."""
    per_run = {f"{step}@{loss}-{seed}" for step in steps if step == "train" for loss in losses for seed in seeds}
    return per_run | {f"{step}@{loss}" for step in steps if step != "train" for loss in losses}


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def restored_stages(output: str) -> set[str]:
    """Stages DVC took from its run cache (the same inputs ran before, e.g. in an earlier experiment)."""
    return {line.split("'")[1] for line in output.splitlines() if "is cached - skipping run" in line}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, copy_project, subprocess_env) -> Path:
    ENV.update(subprocess_env)
    root = copy_project(tmp_path_factory.mktemp("lossbench_e2e"))
    tiny_params(root / "params.yaml")
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc" / "plots")  # the plot templates dvc.yaml names
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
    expected = {"synthesize", "preprocess", "weights", "featurize", "compare", "headline", "submit"} | run_stages()
    expected |= {f"tune@{loss}" for loss in LOSSES}
    assert ran_stages(reproduced) == expected
    for loss in LOSSES:
        for seed in (0, 1):
            metrics = json.loads((repo / f"metrics/runs/{loss}/seed{seed}.json").read_text())
            assert 0.0 <= metrics["top1"] <= metrics["top5"] <= metrics["top10"] <= 1.0
            assert metrics["score"] == pytest.approx(
                600 * metrics["top1"] + 300 * metrics["top5"] + 100 * metrics["top10"]
            )
            assert metrics["index_top1"] == pytest.approx(metrics["top1"])  # Flat: the index returns the exact ranking
    baseline = [json.loads((repo / f"metrics/runs/baseline/seed{s}.json").read_text()) for s in (0, 1)]
    assert baseline[0] == baseline[1]  # nothing trains: every seed of the baseline is the same model
    table = (repo / "metrics/comparison.md").read_text()
    for loss in LOSSES:
        assert f"| {loss} " in table or f"| **{loss}" in table
    assert (repo / "figures/comparison/score.png").stat().st_size > 0
    headline = json.loads((repo / "metrics/metrics.json").read_text())
    assert headline["loss"] == "arcface" and headline["seeds"] == 2
    assert headline["score_low"] <= headline["score"] <= headline["score_high"]
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert set(summary) == set(LOSSES) and any(v["tied_with_best"] for v in summary.values())
    assert "up to date" in dvc("status", cwd=repo).stdout


def test_plots_overlay_the_losses(repo, reproduced):
    shown = json.loads(dvc("plots", "show", "--json", cwd=repo).stdout)
    assert not shown.get("errors"), shown["errors"]
    series = {
        name.split(",")[0].split()[0]: {row["loss"] for row in plots[0]["content"]["data"]["values"]}
        for name, plots in shown["data"].items()
        if plots and plots[0]["type"] == "vega"
    }
    assert series == {"ROC": set(LOSSES), "CMC": set(LOSSES), "Validation": set(LOSSES) - {"baseline"}}
    roc = next(plots[0]["content"] for name, plots in shown["data"].items() if name.startswith("ROC"))
    assert roc["encoding"]["x"]["scale"] == {"type": "log"} and roc["encoding"]["color"]["field"] == "loss"
    images = [name for name, plots in shown["data"].items() if plots and plots[0]["type"] == "image"]
    assert len(images) == 4


@pytest.fixture(scope="module")
def shared(repo: Path, reproduced: str, tmp_path_factory) -> Path:
    """A bare git origin and a folder DVC remote holding the committed study (README, *Share results*)."""
    shared = tmp_path_factory.mktemp("shared")
    run(["git", "init", "-q", "--bare", str(shared / "origin.git")], shared)
    run(["git", "remote", "add", "origin", str(shared / "origin.git")], repo)
    dvc("remote", "add", "-d", "storage", str(shared / "dvc-storage"), cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "default study"], repo)
    run(["git", "push", "-q", "origin", "HEAD:main"], repo)
    dvc("push", "--run-cache", cwd=repo)
    return shared


def test_a_dvc_remote_shares_results_and_experiments_with_another_clone(repo, shared):
    """README's remote workflow: commit + `dvc push` here; clone + `dvc pull` there runs nothing; experiments
    travel with `dvc exp push` / `dvc exp pull`."""
    clone = shared / "clone"
    run(["git", "clone", "-q", "-b", "main", str(shared / "origin.git"), str(clone)], shared)
    dvc("pull", cwd=clone)
    assert ran_stages(dvc("repro", cwd=clone).stdout) == set()
    assert (clone / "models/arcface/seed0").is_dir() and "up to date" in dvc("status", cwd=clone).stdout

    dvc("exp", "run", "-n", "headline-triplet", "-S", "loss=triplet", cwd=repo)
    dvc("exp", "push", "origin", "headline-triplet", cwd=repo)
    dvc("exp", "pull", "origin", "headline-triplet", cwd=clone)
    shown = json.loads(dvc("exp", "show", "--json", cwd=clone).stdout)
    assert "headline-triplet" in json.dumps(shown)
    dvc("exp", "apply", "headline-triplet", cwd=clone)
    assert json.loads((clone / "metrics/metrics.json").read_text())["loss"] == "triplet"
    run(["git", "checkout", "-q", "--", "."], repo)  # the next tests start from the committed study
    dvc("checkout", "-q", cwd=repo)


def test_the_run_cache_through_a_remote_spares_a_coordinator_every_run(repo, shared):
    """Workers `dvc push --run-cache`; on a commit without their dvc.lock entries a coordinator's
    `dvc repro --pull` restores every run from the run cache instead of training (README, *Several machines*)."""
    coordinator = shared / "coordinator"
    run(["git", "clone", "-q", "-b", "main", str(shared / "origin.git"), str(coordinator)], shared)
    first = run(["git", "rev-list", "--max-parents=0", "HEAD"], coordinator).stdout.strip()
    run(["git", "checkout", "-q", first], coordinator)  # the project before any result was committed
    assert not (coordinator / "dvc.lock").exists()
    dvc("remote", "add", "-d", "storage", str(shared / "dvc-storage"), cwd=coordinator)
    result = dvc("repro", "--pull", cwd=coordinator)  # pulls the run cache and the outputs it points to
    ran = ran_stages(result.stdout)
    assert not ran & run_stages(), ran  # no run trains: each is restored from the pulled run cache
    # persistent or git-tracked outputs: DVC keeps no run cache for those stages (cheap, or the committed tuning)
    assert ran <= {"weights", "preprocess", "featurize", "compare", "headline"} | {f"tune@{loss}" for loss in LOSSES}
    for loss in LOSSES:
        assert f"Stage 'train@{loss}-0' is cached - skipping run" in result.stdout
    for name in ("metrics/metrics.json", "metrics/runs/arcface/seed1.json"):
        assert (coordinator / name).read_text() == (repo / name).read_text()


def test_switching_the_headline_runs_no_training_and_shows_in_metrics_diff(repo, reproduced):
    before = json.loads((repo / "metrics/metrics.json").read_text())
    result = dvc("exp", "run", "-S", "loss=triplet", cwd=repo)
    ran = ran_stages(result.stdout) | restored_stages(result.stdout)  # submit ran for triplet in the remote test
    assert ran == {"headline", "submit"}, ran  # only these two read `loss`
    after = json.loads((repo / "metrics/metrics.json").read_text())
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert after["loss"] == "triplet" and after["score"] == summary["triplet"]["score"]
    diff = dvc("metrics", "diff", "--json", cwd=repo).stdout
    changes = json.loads(diff)["metrics/metrics.json"]
    changed = {k for k, v in changes.items() if v.get("diff")}
    numeric = {k for k in after if isinstance(after[k], float) and after[k] != before[k]}
    assert numeric and numeric <= changed


def exp_ran(repo: Path, *overrides: str) -> set[str]:
    """The stages ``dvc exp run -S …`` runs from the committed study (the workspace restored before and after)."""
    restore(repo)
    result = dvc("exp", "run", *[arg for o in overrides for arg in ("-S", o)], cwd=repo)
    restore(repo)
    return ran_stages(result.stdout) | restored_stages(result.stdout)


def restore(repo: Path) -> None:
    """Back to the committed study: params, lock and git-tracked outputs from git (files an experiment added to a
    git-tracked output folder removed, e.g. the tuning figure), the rest from DVC's cache."""
    run(["git", "checkout", "-q", "--", "."], repo)
    run(["git", "clean", "-fdq", "--", "figures", "metrics", "data/tuning"], repo)
    dvc("checkout", "-q", cwd=repo)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # a loss option, a per-loss training override and that loss's search space: the checks (they read
        # `losses`), that loss's tuning and runs, the comparison and the headline row (summary.json changed); no
        # featurize, no other loss
        (
            (
                "losses.triplet.margin=0.3",
                "++losses.triplet.train.epochs=3",
                "++losses.triplet.tune.space.margin=[0.5,1.0]",
            ),
            {"weights", "tune@triplet"} | run_stages(("triplet",)) | {"compare", "headline"},
        ),
        # an index setting (quoted: a bare comma is a sweep to DVC): the checks, indexing onward, no training, no
        # embedding (the headline row holds exact metrics only: unchanged, so not re-written)
        (("index.factory='IVF2,Flat'",), {"weights"} | run_stages(steps=("index", "evaluate")) | {"compare"}),
        # an evaluation setting: evaluation and comparison (the headline row reads none of the TAR columns)
        (("evaluate.far=[0.01]",), run_stages(steps=("evaluate",)) | {"compare"}),
        # figures only: the comparison (its summary.json unchanged, so not the headline)
        (("evaluate.tsne=false",), {"compare"}),
    ],
    ids=["loss", "index", "far", "tsne"],
)
def test_a_change_reruns_exactly_what_depends_on_it(repo, reproduced, overrides, expected):
    assert exp_ran(repo, *overrides) == expected


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("lossbench/comparison/tables.py", {"compare"}),
        ("lossbench/index/build.py", run_stages(steps=("index",))),  # its outputs unchanged: evaluation not re-run
    ],
    ids=["tables", "index"],
)
def test_a_code_edit_reruns_exactly_the_stages_that_import_it(repo, reproduced, module, expected):
    path = repo / module
    original = path.read_text()
    path.write_text(original + "\n# an edit that changes no behaviour\n")
    try:
        ran = ran_stages(dvc("repro", cwd=repo).stdout)
    finally:
        restore(repo)
    assert ran == expected


def test_a_no_op_repro_runs_nothing(repo, reproduced):
    assert ran_stages(dvc("repro", cwd=repo).stdout) == set()


def test_an_index_the_test_gallery_cannot_hold_is_refused_before_any_training(repo, reproduced):
    result = dvc(
        "exp", "run", "-S", "index.factory='IVF4096,Flat'", "-S", "losses.triplet.margin=0.4", cwd=repo, check=False
    )
    run(["git", "checkout", "-q", "--", "."], repo)
    assert result.returncode != 0
    assert "IVF lists but the gallery has only" in result.stdout + result.stderr
    assert not ran_stages(result.stdout) - {"weights"}


def test_a_new_seed_trains_only_that_seed(repo, reproduced):
    """A dry run lists the stages whose own inputs changed; every stage downstream of a new seed's training reads
    `seeds` itself, so the dry run's set is the set a real run runs."""
    params = repo / "params.yaml"
    original = params.read_text()
    assert "seeds:\n- 0\n- 1\n" in original
    params.write_text(original.replace("seeds:\n- 0\n- 1\n", "seeds:\n- 0\n- 1\n- 2\n"))
    try:
        ran = ran_stages(dvc("repro", "--dry", cwd=repo).stdout)
    finally:
        params.write_text(original)
    expected = run_stages(seeds=(2,), steps=("train",)) | run_stages(steps=("embed", "index", "evaluate"))
    assert ran == expected | {"compare", "headline", "submit"}, ran


def test_a_forced_rerun_with_unchanged_inputs_changes_no_metric_and_no_output_hash(repo, reproduced):
    run(["git", "checkout", "-q", "--", "."], repo)
    dvc("checkout", "-q", cwd=repo, check=False)
    lock = (repo / "dvc.lock").read_text()
    dvc("repro", "-f", "-s", "train@arcface-0", cwd=repo)  # retrains; the same checkpoint: nothing downstream re-runs
    dvc("repro", cwd=repo)
    assert json.loads(dvc("metrics", "diff", "--json", cwd=repo).stdout) == {}
    # every output byte for byte the same (checkpoints included), so DVC records the same hashes
    assert (repo / "dvc.lock").read_text() == lock


def test_unknown_headline_loss_fails_with_the_configured_list(repo, reproduced):
    result = dvc("exp", "run", "-S", "loss=nope", cwd=repo, check=False)
    assert result.returncode != 0
    assert "is not one of the configured losses: baseline, arcface, triplet" in result.stdout + result.stderr


def test_the_readme_own_data_commands_run_in_a_fresh_clone(repo, reproduced, tmp_path):
    """README, *Your own data*, in a fresh clone of the study (no DVC cache, nothing reproduced): check the folder,
    `dvc add` it, preprocess it in an experiment. The committed dvc.lock names cached outputs the clone does not
    have; the experiment must not need them. (The study that follows is the `dvc repro` every other test runs.)"""
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    faces = clone / "data" / "faces"
    for identity in sorted(p for p in (repo / "data" / "synthetic").iterdir() if p.is_dir()):
        (faces / identity.name).mkdir(parents=True)
        for image in sorted(identity.glob("*/*.png")):  # one folder per identity, no domain sub-folders
            shutil.copy(image, faces / identity.name / f"{image.parent.name}_{image.name}")
    checked = run([sys.executable, "-m", "lossbench", "check-data", str(faces)], clone)
    assert "no problems found" in checked.stdout, checked.stdout
    dvc("add", "data/faces", cwd=clone)
    result = dvc(
        "exp", "run", "preprocess", "-S", "data.original=data/faces", "-S", "data.query_domain=null", cwd=clone
    )
    assert ran_stages(result.stdout) == {"preprocess"}
    report = json.loads((clone / "metrics/data.json").read_text())
    assert report["classes"] == 16 and report["images"] == sum(1 for _ in faces.glob("*/*.png"))
    assert report["query_domain"] is None
