"""`python -m lossbench search` against a tiny pipeline run (`dvc repro` in a temporary DVC project).

The run also exercises the `submit` stage on the image-folder layout (submission of the test split).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from lossbench.apps.cli import main
from lossbench.apps.search import NEUTRAL_COLOR
from lossbench.comparison.figures import RIGHT_COLOR, WRONG_COLOR

ROOT = Path(__file__).resolve().parents[1]


def tiny_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text())
    params["synthetic"].update(identities=12, images_per_id=6, image_size=32)
    params["data"].update(image_size=32, val_ids=0.25, test_ids=0.34, queries_per_id=2)  # 4 test ids: 12 gallery images
    params["model"].update(backbone="timm:test_resnet", pretrained=None, freeze=False, embed_dim=16, hidden=32)
    params["train"].update(epochs=1, ids_per_batch=4, images_per_id=2, feature_views=1, patience=1)
    params["evaluate"].update(examples=0, tsne=False)
    params["loss"] = "arcface"
    params["seeds"] = [0]
    params["threads"] = 1  # the other pytest-xdist worker has the other core
    params["tune"]["trials"] = 0  # hand-set values: search needs a trained run, not a tuned one
    params["stats"]["resamples"] = 100
    params["losses"] = {"baseline": {}, "arcface": {**params["losses"]["arcface"], "scale": 16.0}}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory, copy_project, subprocess_env) -> tuple[Path, str]:
    """A reproduced tiny project and the stdout of its `dvc repro`."""
    root = copy_project(tmp_path_factory.mktemp("search_project"))
    tiny_params(root / "params.yaml")
    for args in (["init", "--no-scm", "-q"], ["config", "core.analytics", "false"], ["repro"]):
        result = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=root, env=subprocess_env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return root, result.stdout


@pytest.fixture
def in_project(project, monkeypatch) -> Path:
    monkeypatch.chdir(project[0])
    return project[0]


def manifest(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data/processed/manifest.csv", keep_default_na=False, dtype={"identity": str})


def reference_ranking(root: Path, loss: str, query_position: int, k: int) -> tuple[list[str], np.ndarray]:
    """Independent of FAISS: numpy cosine ranking of the embed stage's vector for that query."""
    emb = root / "data/embeddings" / loss / "seed0"
    query, gallery = np.load(emb / "query.npy"), np.load(emb / "gallery.npy")
    scores = gallery @ query[query_position] / np.linalg.norm(gallery, axis=1) / np.linalg.norm(query[query_position])
    order = np.argsort(-scores, kind="stable")[:k]
    paths = manifest(root).set_index("row").loc[np.load(emb / "gallery_rows.npy")[order], "path"]
    return list(paths), scores[order]


def parse(output: str) -> list[dict]:
    """The search listing back into ``[{header, rows: [(rank, score, identity, path)]}]``."""
    queries: list[dict] = []
    for line in output.splitlines():
        if line.startswith("query "):
            queries.append({"header": line, "rows": []})
        elif line.startswith("  "):
            rank, score, identity, path = line.split()
            queries[-1]["rows"].append((int(rank), float(score), identity, path))
    return queries


@pytest.mark.e2e
def test_repro_ran_submit_and_its_score_matches_evaluate(project):
    root, stdout = project
    assert "Running stage 'submit'" in stdout
    frame = manifest(root)
    test = frame[frame["split"] == "test"]
    queries, gallery = test[test["role"] == "query"], test[test["role"] == "gallery"]
    submission = json.loads((root / "submission.json").read_text())
    assert list(submission) == list(queries["path"])  # image-folder layout: keyed by manifest path
    for names in submission.values():
        assert len(names) == len(set(names)) == 10 and set(names) <= set(gallery["path"])
    # the submission's own score (from its labels) equals evaluate's exact-ranking score for the headline loss
    line = next(line for line in stdout.splitlines() if line.startswith("lossbench submit:"))
    score = float(line.split("score=")[1].split()[0])
    metrics = json.loads((root / "metrics/runs/arcface/seed0.json").read_text())
    assert score == pytest.approx(metrics["score"], abs=0.05)


@pytest.mark.e2e
def test_search_ranks_like_the_embed_stage(in_project, capsys):
    frame = manifest(in_project)
    queries = frame[(frame["split"] == "test") & (frame["role"] == "query")].reset_index(drop=True)
    picks = [0, len(queries) - 1]
    images = [f"data/synthetic/{queries.loc[i, 'path']}" for i in picks]
    assert main(["search", *images, "-k", "5"]) == 0
    found = parse(capsys.readouterr().out)
    assert len(found) == 2
    for result, position in zip(found, picks):
        assert f"(identity: {queries.loc[position, 'identity']}; loss: arcface)" in result["header"]
        paths, scores = reference_ranking(in_project, "arcface", position, 5)
        assert [row[3] for row in result["rows"]] == paths
        assert [row[0] for row in result["rows"]] == [1, 2, 3, 4, 5]
        np.testing.assert_allclose([row[1] for row in result["rows"]], scores, atol=2e-4)
        by_path = frame.set_index("path")
        assert [row[2] for row in result["rows"]] == list(by_path.loc[paths, "identity"])


@pytest.mark.e2e
def test_search_other_loss_and_k(in_project, capsys):
    frame = manifest(in_project)
    query = frame[(frame["split"] == "test") & (frame["role"] == "query")].iloc[0]
    assert main(["search", f"data/synthetic/{query['path']}", "--loss", "baseline", "-k", "3"]) == 0
    [result] = parse(capsys.readouterr().out)
    assert "loss: baseline" in result["header"]
    assert [row[3] for row in result["rows"]] == reference_ranking(in_project, "baseline", 0, 3)[0]


def frame_pixels(path: Path, colours: list[tuple[int, int, int]]) -> int:
    """How many pixels of the figure have one of ``colours`` (a result frame covers thousands)."""
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return int(sum((pixels == np.array(colour)).all(axis=1).sum() for colour in colours))


@pytest.mark.e2e
def test_grid_judges_known_identities_and_not_unknown_ones(in_project, tmp_path, capsys):
    frame = manifest(in_project)
    query = frame[(frame["split"] == "test") & (frame["role"] == "query")].iloc[0]
    source = in_project / "data/synthetic" / query["path"]
    assert main(["search", str(source), "--grid", str(tmp_path / "known.png")]) == 0
    known = tmp_path / "known.png"
    assert frame_pixels(known, [RIGHT_COLOR, WRONG_COLOR]) > 10 * 1000 > frame_pixels(known, [NEUTRAL_COLOR])
    outside = tmp_path / "photo.png"  # same pixels, but not in an identity folder: no judgement
    shutil.copy(source, outside)
    assert main(["search", str(outside), "--grid", str(tmp_path / "unknown.png")]) == 0
    assert "(identity: unknown; loss: arcface)" in capsys.readouterr().out
    unknown = tmp_path / "unknown.png"
    assert frame_pixels(unknown, [NEUTRAL_COLOR]) > 10 * 1000 > frame_pixels(unknown, [RIGHT_COLOR, WRONG_COLOR])


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png"], "query image missing.png not found"),
        (["params.yaml"], "query image params.yaml is not a readable image (not_an_image: cannot identify image file"),
        (["data/synthetic", "-k", "3"], "query image data/synthetic is a folder"),
        (
            ["IMAGE", "--loss", "nope"],
            "unknown loss 'nope': --loss must be one of the configured losses (baseline, arc",
        ),
        (["IMAGE", "-k", "0"], "-k 0: ask for at least 1 result"),
    ],
)
def test_bad_input_is_one_error_line(in_project, capsys, args, message):
    frame = manifest(in_project)
    image = f"data/synthetic/{frame['path'].iloc[0]}"
    assert main(["search", *[image if a == "IMAGE" else a for a in args]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_pipeline_not_run_names_the_command(tmp_path, monkeypatch, capsys):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    image = tmp_path / "face.png"
    Image.new("RGB", (8, 8)).save(image)
    monkeypatch.chdir(tmp_path)
    assert main(["search", str(image)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has not produced data/processed/images.npy" in err
    assert "run `dvc repro index@arcface`" in err


@pytest.mark.e2e
def test_command_line_entry_point(in_project, subprocess_env):
    result = subprocess.run(
        [sys.executable, "-m", "lossbench", "search", "nope.jpg"],
        cwd=in_project,
        env=subprocess_env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: query image nope.jpg not found") and "Traceback" not in result.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "lossbench", "--help"],
        cwd=in_project,
        env=subprocess_env,
        capture_output=True,
        text=True,
    )
    assert helped.returncode == 0 and "search" in helped.stdout and "preset" in helped.stdout
