"""Submission: format and validation, exact ranking, scoring, and the challenge layout end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from lossbench.apps.submission import (
    base_names,
    lost_images,
    make_submission,
    score_ranking,
    validate_submission,
)
from lossbench.core.errors import LossbenchError
from lossbench.core.io import atomic_save_npy
from lossbench.data.preprocess import preprocess_dataset, resize_center_crop
from lossbench.data.scan import open_rgb
from lossbench.data.store import load_processed
from lossbench.data.transforms import build_eval_transform
from lossbench.embedding.extract import extract_embeddings
from lossbench.embedding.sets import set_rows
from lossbench.features.encoders import ImageEncoder
from lossbench.models.builder import build_model

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------ pieces


def test_base_names_keep_folder_names_and_refuse_collisions():
    assert base_names(["test/query/a.jpg", "test/query/sub/b.png"], "query") == ["a.jpg", "b.png"]
    with pytest.raises(LossbenchError, match=r"share the name 'x.png' \(test/query/a/x.png and test/query/b/x.png\)"):
        base_names(["test/query/a/x.png", "test/query/b/x.png"], "query")


def test_validate_accepts_a_good_submission_and_names_every_defect():
    gallery = [f"g{i}.png" for i in range(12)]
    good = {"q1.png": gallery[:10], "q2.png": gallery[2:12]}
    validate_submission(good, ["q1.png", "q2.png"], gallery)
    cases = {
        "missing": ({"q1.png": gallery[:10]}, r"missing \['q2.png'\]"),
        "unknown query": ({**good, "q3.png": gallery[:10]}, r"unknown \['q3.png'\]"),
        "nine names": ({**good, "q2.png": gallery[:9]}, "has 9 names"),
        "a repeat": ({**good, "q2.png": gallery[:9] + gallery[:1]}, r"10 names \(9 distinct\)"),
        "not in the gallery": ({**good, "q2.png": gallery[:9] + ["other.png"]}, r"not in the gallery: \['other.png'\]"),
    }
    for submission, message in cases.values():
        with pytest.raises(LossbenchError, match=message):
            validate_submission(submission, ["q1.png", "q2.png"], gallery)


def test_score_ranking_hand_computed():
    gallery_labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    ids = np.array(
        [
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],  # label 0 at rank 1
            [1, 2, 3, 0, 4, 5, 6, 7, 8, 9],  # label 0 at rank 4
            [1, 2, 3, 4, 5, 6, 7, 0, 8, 9],  # label 0 at rank 8
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # label 0 missing
        ]
    )
    result = score_ranking(ids, np.zeros(4, dtype=int), gallery_labels)
    assert result == pytest.approx(
        {"top1": 0.25, "top5": 0.5, "top10": 0.75, "score": 600 * 0.25 + 300 * 0.5 + 100 * 0.75}
    )


def test_lost_images_are_the_unreadable_challenge_files():
    skipped = {
        "hidden": ["test/query/.DS_Store"],
        "corrupt": ["test/gallery/g7.jpg", "train/a/1.jpg"],
        "not_an_image": ["test/query/notes.txt"],
    }
    assert lost_images(skipped) == ["test/gallery/g7.jpg", "test/query/notes.txt"]


# --------------------------------------------------------------------- make_submission on a manifest


def write_manifest_and_sets(directory: Path, rows: list[tuple], sets: dict[str, np.ndarray]) -> pd.DataFrame:
    """A manifest from ``(path, identity, label, split, role)`` rows and embedding sets keyed by set name."""
    frame = pd.DataFrame(rows, columns=["path", "identity", "label", "split", "role"])
    frame.insert(0, "row", np.arange(len(frame)))
    frame = frame.assign(domain="", sha1="")
    split_role = {
        "query": ("test", "query"),
        "gallery": ("test", "gallery"),
        "challenge_query": ("challenge", "query"),
        "challenge_gallery": ("challenge", "gallery"),
    }
    for name, vectors in sets.items():
        split, role = split_role[name]
        rows_of_set = frame[(frame["split"] == split) & (frame["role"] == role)]["row"].to_numpy()
        atomic_save_npy(directory / f"{name}.npy", vectors.astype(np.float32))
        atomic_save_npy(directory / f"{name}_rows.npy", rows_of_set)
    return frame


def one_hot(indices: list[int], dim: int = 16) -> np.ndarray:
    out = np.full((len(indices), dim), 0.01, dtype=np.float32)
    out[np.arange(len(indices)), indices] = 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_test_split_submission_is_keyed_by_path_and_scored(tmp_path):
    # 12 gallery images: identities a, b, c with 4 images each; every identity has an image called 0.png
    gallery_rows = [
        (f"{ident}/{i}.png", ident, label, "test", "gallery") for label, ident in enumerate("abc") for i in range(4)
    ]
    query_rows = [("a/q.png", "a", 0, "test", "query"), ("b/q.png", "b", 1, "test", "query")]
    # query a points at gallery item 5 (identity b) first, then at item 0 (a); query b at item 4 (b)
    query = one_hot([5, 4]) + 0.5 * one_hot([0, 4])
    frame = write_manifest_and_sets(
        tmp_path, query_rows + gallery_rows, {"query": query, "gallery": one_hot(list(range(12)))}
    )
    submission = make_submission(frame, tmp_path)
    assert submission.target == "test" and submission.k == 10 and submission.num_gallery == 12
    assert list(submission.entries) == ["a/q.png", "b/q.png"]
    assert submission.entries["a/q.png"][:2] == ["b/1.png", "a/0.png"]
    assert submission.entries["b/q.png"][0] == "b/0.png"
    assert submission.metrics == pytest.approx({"top1": 0.5, "top5": 1.0, "top10": 1.0, "score": 700.0})
    assert "score=700.0" in submission.summary()


def test_small_gallery_warns_and_lists_all_of_it(tmp_path):
    rows = [("test/query/q.png", "", -1, "challenge", "query")] + [
        (f"test/gallery/g{i}.png", "", -1, "challenge", "gallery") for i in range(6)
    ]
    labelled = [("a/0.png", "a", 0, "test", "query"), ("a/1.png", "a", 0, "test", "gallery")]
    frame = write_manifest_and_sets(
        tmp_path,
        labelled + rows,
        {
            "query": one_hot([0]),
            "gallery": one_hot([0]),
            "challenge_query": one_hot([3]),
            "challenge_gallery": one_hot(list(range(6))),
        },
    )
    with pytest.warns(UserWarning, match="only 6 images, fewer than 10"):
        submission = make_submission(frame, tmp_path)
    assert submission.target == "challenge" and submission.metrics is None
    # g3 first; the other five are equally similar and keep their gallery order
    assert submission.entries == {"q.png": ["g3.png", "g0.png", "g1.png", "g2.png", "g4.png", "g5.png"]}


def test_colliding_challenge_names_and_stale_embeddings_fail(tmp_path):
    rows = [("test/query/a/x.png", "", -1, "challenge", "query"), ("test/query/b/x.png", "", -1, "challenge", "query")]
    rows += [(f"test/gallery/g{i}.png", "", -1, "challenge", "gallery") for i in range(10)]
    sets = {"challenge_query": one_hot([0, 1]), "challenge_gallery": one_hot(list(range(10)))}
    frame = write_manifest_and_sets(tmp_path, rows, sets)
    with pytest.raises(LossbenchError, match="share the name 'x.png'"):
        make_submission(frame, tmp_path)
    extra = pd.DataFrame([{**frame.iloc[-1].to_dict(), "row": len(frame), "path": "test/gallery/new.png"}])
    with pytest.raises(LossbenchError, match=r"does not cover the 11 challenge gallery images.*dvc repro embed@"):
        make_submission(pd.concat([frame, extra], ignore_index=True), tmp_path)


# ------------------------------------------------------------------ challenge layout, end to end


def pattern(seed: int, size: int = 48) -> np.ndarray:
    """A smooth random colour pattern (an "identity"), upsampled from 6x6 noise."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


def jitter(image: np.ndarray, seed: int, amount: int = 12) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-amount, amount + 1, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def challenge_project(tmp_path, monkeypatch) -> tuple:
    """A challenge folder (6 train identities; 5 queries, 13 gallery images), preprocessed and embedded with
    batch size 4 by a random test network; returns (project, near-duplicate of each query, model, data folder)."""
    data = tmp_path / "raw"
    for ident in range(6):
        for i in range(4):
            save(data / "train" / f"id{ident}" / f"{i}.png", jitter(pattern(100 + ident), 10 * ident + i))
    partner = {}
    for i in range(13):  # gallery image i shows "identity" 200 + i; queries 0..4 show the same with other noise
        save(data / "test/gallery" / f"img_{i:03d}.png", jitter(pattern(200 + i), 1000 + i))
    for i in range(5):
        save(data / "test/query" / f"photo{i}.png", jitter(pattern(200 + 2 * i), 2000 + i))
        partner[f"photo{i}.png"] = f"img_{2 * i:03d}.png"
    project = tmp_path / "project"
    preprocess_dataset(
        data,
        project / "data/processed",
        image_size=32,
        val_ids=0.0,
        test_ids=0.34,
        queries_per_id=1,
        query_domain=None,
        query_domain_missing="random",
        min_images_per_id=2,
        max_image_pixels=89478485,
        seed=0,
    )
    images, manifest = load_processed(project / "data/processed")
    cfg = SimpleNamespace(
        backbone="timm:test_resnet", pretrained=None, input_size=None, embed_dim=8, hidden=0, dropout=0.0, freeze=False
    )
    model = build_model(cfg, 32, 0, 1, "normalise").eval()
    rows = set_rows(manifest)
    transform = build_eval_transform(model.backbone.input_size, model.backbone.mean, model.backbone.std)
    encoders = {name: ImageEncoder(images, r, transform, torch.device("cpu")) for name, r in rows.items()}
    extract_embeddings(model, encoders, rows, project / "data/embeddings/baseline/seed0", batch_size=4, flip_tta=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update(loss="baseline", seeds=[0])
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(project)
    return project, partner, model, data


def test_challenge_submission_end_to_end(challenge_project):
    from stages.submit import main

    project, partner, model, data = challenge_project
    summary = main()
    assert "challenge: 5 queries x top-10 of 13 gallery images" in summary
    submission = json.loads((project / "submission.json").read_text())
    gallery_files = sorted(p.name for p in (data / "test/gallery").iterdir())
    assert sorted(submission) == sorted(partner)  # every query, named as in test/query
    for query, names in submission.items():
        assert len(names) == len(set(names)) == 10 and set(names) <= set(gallery_files)
        assert names[0] == partner[query]  # a near-duplicate is found first

    # reference: every file embedded on its own (no batching), ranked with numpy
    transform = build_eval_transform(model.backbone.input_size, model.backbone.mean, model.backbone.std)

    def embed(path: Path) -> np.ndarray:
        with torch.no_grad():
            x = transform(resize_center_crop(open_rgb(path, 89478485), 32)).unsqueeze(0)
            return model(x)[0].numpy()

    gallery = np.stack([embed(data / "test/gallery" / name) for name in gallery_files])
    for query, names in submission.items():
        order = np.argsort(-(gallery @ embed(data / "test/query" / query)), kind="stable")[:10]
        assert names == [gallery_files[i] for i in order]


def test_submit_refuses_a_data_report_of_other_data(challenge_project):
    """The data report names the skipped challenge images: submit must not trust a report of another preprocess
    run (its digests differ from the processed set's) and writes nothing then."""
    from stages.submit import main

    project, *_ = challenge_project
    digests = json.loads((project / "data/processed/digest.json").read_text())
    report = project / "metrics/data.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"digest": {**digests, "manifest.csv": "0" * 64}, "skipped": {}}))
    with pytest.raises(LossbenchError, match=r"manifest.csv .*digests differ from metrics/data.json.*mixed"):
        main()
    assert not (project / "submission.json").exists()
    report.write_text(json.dumps({"digest": digests, "skipped": {}}))  # the report of this data: accepted
    assert "challenge: 5 queries" in main()
