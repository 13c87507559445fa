"""Hostile data folders (issue 15): every file ends in the manifest or in the data report with its reason, nothing
hangs, misread layouts and late errors are named. Permission errors are simulated (the suite may run as root)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import lossbench.data.scan as scan_module
import lossbench.data.walk as walk_module
from lossbench.apps.cli import main as cli
from lossbench.core.errors import LossbenchError
from lossbench.core.stage import run_stage
from lossbench.data.checks import check_batches_fit
from lossbench.data.preprocess import preprocess_dataset
from lossbench.data.scan import UnusableImage, open_rgb
from lossbench.data.store import MANIFEST_FILE, check_digests, load_processed
from lossbench.index.faiss_index import check_factory

LIMIT = 89478485
SETTINGS = {
    "image_size": 8,
    "val_ids": 0.0,
    "test_ids": 0.34,
    "folds": 0,
    "fold": 0,
    "queries_per_id": 1,
    "query_domain": None,
    "query_domain_missing": "random",
    "min_images_per_id": 2,
    "max_image_pixels": LIMIT,
    "seed": 0,
    "workers": 1,
}


def image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    return path


def identities(root: Path, count: int = 6, per_id: int = 3, first_seed: int = 0) -> Path:
    for k in range(count):
        for i in range(per_id):
            image(root / f"id_{k}" / f"{i}.png", first_seed + 100 * k + i)
    return root


def preprocess(root: Path, out: Path, **settings) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return preprocess_dataset(root, out, **{**SETTINGS, **settings})


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail instead of hanging forever (a safety net, not a timing assertion)."""

    def stop(*_args) -> None:
        raise TimeoutError("blocked: a special file was opened")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# 1, 2 -------------------------------------------------------------------------------------------------- links


def test_a_linked_subfolder_inside_an_identity_is_refused_not_dropped(tmp_path: Path) -> None:
    root = identities(tmp_path / "raw")
    for i in range(4):
        image(tmp_path / "elsewhere" / f"{i}.png", 900 + i)
    (root / "id_0" / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(LossbenchError, match=r"1 link\(s\) to folders: id_0/more/ -> .*elsewhere.*DVC.*cp -rL"):
        preprocess(root, tmp_path / "out")


def test_a_linked_identity_folder_is_refused(tmp_path: Path) -> None:
    root = identities(tmp_path / "raw")
    identities(tmp_path / "other", count=1, first_seed=5000)
    (root / "id_9").symlink_to(tmp_path / "other" / "id_0", target_is_directory=True)
    with pytest.raises(LossbenchError, match=r"id_9/ -> .*DVC does not track"):
        preprocess(root, tmp_path / "out")


def test_dangling_and_looping_file_links_are_skipped_with_their_cause(tmp_path: Path) -> None:
    root = identities(tmp_path / "raw")
    (root / "id_0" / "gone.png").symlink_to(tmp_path / "missing.png")
    (root / "id_1" / "loop.png").symlink_to(root / "id_1" / "loop.png")
    image(tmp_path / "target.png", 777)
    (root / "id_2" / "linked.png").symlink_to(tmp_path / "target.png")  # a link to a file is read (DVC hashes it)
    report = preprocess(root, tmp_path / "out")
    assert report["skipped"]["broken_symlink"] == ["id_0/gone.png", "id_1/loop.png"]
    assert "dangling" in report["skip_causes"]["id_0/gone.png"]
    assert "loop" in report["skip_causes"]["id_1/loop.png"]
    assert "id_2/linked.png" in set(load_processed(tmp_path / "out")[1]["path"])


# 3 --------------------------------------------------------------------------------------- unreadable entries


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Folder and file names whose listing / opening raises PermissionError (as for a non-root user)."""
    names: set[str] = set()
    real_scandir, real_open = os.scandir, open

    def scandir(path="."):
        if isinstance(path, (str, os.PathLike)) and Path(path).name in names:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    def fake_open(path, *args, **kwargs):
        if Path(path).name in names:
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(walk_module.os, "scandir", scandir)
    monkeypatch.setattr(scan_module, "open", fake_open, raising=False)
    return names


def test_unreadable_file_identity_and_subfolder_are_reported_with_the_real_reason(
    tmp_path: Path, unreadable: set[str]
) -> None:
    root = identities(tmp_path / "raw", count=7)
    image(root / "id_1" / "sub" / "a.png", 501)
    unreadable |= {"2.png", "id_6", "sub"}
    report = preprocess(root, tmp_path / "out")
    assert report["skipped"]["unreadable"] == [f"id_{k}/2.png" for k in range(6)]
    assert report["skipped"]["corrupt"] == []
    assert all("PermissionError" in report["skip_causes"][f"id_{k}/2.png"] for k in range(6))
    [dropped] = report["dropped_identities"]
    assert dropped["identity"] == "id_6" and dropped["reason"] == "unreadable" and "Permission" in dropped["detail"]
    folders = {f["path"]: f for f in report["skipped_folders"]}
    assert folders["id_1/sub/"]["reason"] == "unreadable" and "PermissionError" in folders["id_1/sub/"]["detail"]


# 4 ------------------------------------------------------------------------------------------- misread layouts


def test_a_pre_split_data_set_is_named(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        identities(tmp_path / "raw" / split, count=2)
    with pytest.raises(LossbenchError, match=r"pre-split data set \(test/, train/, val/ each holding <person>/"):
        preprocess(tmp_path / "raw", tmp_path / "out")


@pytest.mark.parametrize(
    ("test_folders", "expected"),
    [
        (["queries", "galery"], r"test/ holds galery/, queries/ and lacks test/query/ and test/gallery/"),
        (["query"], r"test/ holds query/ and lacks test/gallery/"),
        ([], r"test/ holds no folders"),
    ],
)
def test_a_challenge_layout_with_misspelled_or_missing_test_folders_is_named(
    tmp_path: Path, test_folders: list[str], expected: str
) -> None:
    root = tmp_path / "raw"
    identities(root / "train")
    (root / "test").mkdir()
    for k, name in enumerate(test_folders):
        image(root / "test" / name / "x.png", 300 + k)
    with pytest.raises(LossbenchError, match=f"recognised a challenge layout.*{expected}"):
        preprocess(root, tmp_path / "out")


def test_a_challenge_layout_without_test_is_named(tmp_path: Path) -> None:
    identities(tmp_path / "raw" / "train")
    with pytest.raises(LossbenchError, match=r"recognised train/ of a challenge layout but no test/ folder"):
        preprocess(tmp_path / "raw", tmp_path / "out")


# 5 ----------------------------------------------------------------------------- names and the processed unit


def test_names_that_are_not_utf8_are_skipped_and_reported(tmp_path: Path) -> None:
    root = identities(tmp_path / "raw")
    bad_file = os.path.join(os.fsencode(root / "id_0"), b"caf\xe9.png")
    bad_folder = os.path.join(os.fsencode(root / "id_1"), b"\xff")
    os.mkdir(bad_folder)
    for path in (bad_file, os.path.join(bad_folder, b"x.png")):
        with open(path, "wb") as handle:
            handle.write((root / "id_2" / "0.png").read_bytes())
    report = preprocess(root, tmp_path / "out")
    assert report["skipped"]["name_not_utf8"] == ["id_0/caf\\xe9.png"]
    assert report["skipped_folders"] == [
        {"path": "id_1/\\xff/", "reason": "name_not_utf8", "detail": "the name is not valid UTF-8: rename it"}
    ]
    json.dumps(report, ensure_ascii=False).encode("utf-8")  # the report is valid UTF-8
    assert len(load_processed(tmp_path / "out")[1]) == 18


def test_the_processed_set_is_one_unit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = preprocess(identities(tmp_path / "a"), out)
    old_manifest = (out / MANIFEST_FILE).read_bytes()
    second = preprocess(identities(tmp_path / "b", first_seed=7000), out)  # same shape, other images
    assert first["digest"] != second["digest"] and first["images"] == second["images"]
    assert sorted(p.name for p in out.iterdir()) == ["digest.json", "images.npy", "manifest.csv"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left

    check_digests(out, second["digest"], "metrics/data.json")  # the report belongs to the processed set
    with pytest.raises(
        LossbenchError, match=r"images.npy, .*manifest.csv in .* \(digests differ from metrics/data.json"
    ):
        check_digests(out, first["digest"], "metrics/data.json")

    (out / MANIFEST_FILE).write_bytes(old_manifest)  # an older manifest of the same length
    with pytest.raises(LossbenchError, match=r"manifest.csv .* do not belong to the same preprocess run"):
        load_processed(out)

    preprocess(identities(tmp_path / "b", first_seed=7000), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(LossbenchError):  # a failed run leaves the previous set as it was
        preprocess(tmp_path / "b", out, test_ids=0.0, val_ids=0.0, folds=0)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# 6 ------------------------------------------------------------------------------------------- deep pixel modes


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I", np.array([[0, 128, 255]], np.int32), [0, 128, 255]),  # 8-bit values in a 32-bit image
        ("I", np.array([[0, 2048, 4095]], np.int32), [0, 128, 255]),  # 12-bit
        ("I", np.array([[0, 32896, 65535]], np.int32), [0, 128, 255]),  # 16-bit
        ("I", np.array([[-5, 2**31 - 1, 2**30]], np.int32), [0, 255, 128]),  # 32-bit; negatives are 0
        ("I;16", np.array([[0, 2048, 4095]], np.uint16), [0, 128, 255]),  # 12-bit data stored in 16 bits
        ("I;16", np.array([[0, 32896, 65535]], np.uint16), [0, 128, 255]),
        ("F", np.array([[0.0, 0.5, 1.0]], np.float32), [0, 128, 255]),  # floats in [0, 1]
        ("F", np.array([[0.0, 128.0, 255.0]], np.float32), [0, 128, 255]),  # floats in [0, 255]
        ("F", np.array([[0.0, 500.0, 1000.0]], np.float32), [0, 128, 255]),  # larger: scaled by the maximum
    ],
)
def test_deep_images_are_converted_by_value_range(tmp_path: Path, mode: str, values, expected) -> None:
    path = tmp_path / "deep.tif"
    Image.fromarray(values).save(path)
    with Image.open(path) as stored:
        assert stored.mode == mode
    pixels = np.asarray(open_rgb(path, LIMIT))
    assert pixels[0, :, 0].tolist() == expected and (pixels[..., 0] == pixels[..., 2]).all()


def test_an_int32_photo_is_not_stored_black(tmp_path: Path) -> None:
    grey = np.random.default_rng(0).integers(0, 256, (16, 16)).astype(np.int32)
    Image.fromarray(grey, "I").save(tmp_path / "photo.tif")
    assert abs(np.asarray(open_rgb(tmp_path / "photo.tif", LIMIT)).mean() - grey.mean()) < 0.5


# 7 --------------------------------------------------------------------------------------------- special files


def test_a_named_pipe_is_skipped_without_hanging(tmp_path: Path, no_hang: None) -> None:
    root = identities(tmp_path / "raw")
    os.mkfifo(root / "id_0" / "pipe.jpg")
    report = preprocess(root, tmp_path / "out")
    assert report["skipped"]["special_file"] == ["id_0/pipe.jpg"]
    assert report["skip_causes"]["id_0/pipe.jpg"] == "named pipe (FIFO)"
    with pytest.raises(UnusableImage) as exc:  # opened directly, it is refused too (regular files only)
        open_rgb(root / "id_0" / "pipe.jpg", LIMIT)
    assert exc.value.reason == "special_file"


# 8, 10 ------------------------------------------------------------------------------ splits later stages need


def test_a_val_split_of_one_identity_is_a_warning_in_the_report(tmp_path: Path) -> None:
    root = identities(tmp_path / "raw", count=7)
    with pytest.warns(UserWarning, match="val split has 1 identity.*cannot rank epochs"):
        report = preprocess_dataset(root, tmp_path / "out", **{**SETTINGS, "val_ids": 0.15, "test_ids": 0.3})
    assert report["identities"]["val"] == 1
    assert any("cannot rank epochs" in note for note in report["warnings"])


@pytest.mark.parametrize(("count", "expected"), [(3, "train split has 1 identity"), (4, "test split has 1 identity")])
def test_too_few_identities_for_training_or_evaluation_fail_in_preprocess(tmp_path: Path, count, expected) -> None:
    root = identities(tmp_path / "raw", count=count)
    with pytest.raises(LossbenchError, match=expected):
        preprocess(root, tmp_path / "out", val_ids=0.15, test_ids=0.25)


def test_batches_that_do_not_fit_the_train_split_are_named() -> None:
    manifest = pd.DataFrame({"identity": ["a", "b", "c"], "split": ["train"] * 3})
    check_batches_fit(manifest, [("arcface", 3)])
    with pytest.raises(LossbenchError, match=r"exceeds the 3 train identities for triplet \(16\)"):
        check_batches_fit(manifest, [("arcface", 3), ("triplet", 16)])


def challenge(root: Path) -> Path:
    identities(root / "train")
    for i in range(3):
        image(root / "test" / "query" / f"q{i}.png", 400 + i)
        image(root / "test" / "gallery" / f"g{i}.png", 500 + i)
    return root


def test_challenge_test_sets_are_checked_in_preprocess(tmp_path: Path) -> None:
    root = challenge(tmp_path / "raw")
    assert preprocess(root, tmp_path / "out")["images_per_split"]["challenge"] == 6
    image(root / "test" / "query" / "sub" / "q0.png", 600)
    with pytest.raises(LossbenchError, match=r"two challenge query files share the name 'q0.png'"):
        preprocess(root, tmp_path / "out")
    for path in (root / "test" / "query").rglob("*.png"):
        path.write_text("not an image")
    with pytest.raises(LossbenchError, match=r"no usable query image \(test/query/ is empty or every file"):
        preprocess(root, tmp_path / "out")


def test_a_challenge_layout_with_no_usable_test_image_fails_in_preprocess(tmp_path: Path) -> None:
    root = challenge(tmp_path / "raw")
    for path in (root / "test").rglob("*.png"):
        path.write_text("not an image")
    with pytest.raises(LossbenchError, match=r"challenge layout but test/query/ and test/gallery/ hold no usable"):
        preprocess(root, tmp_path / "out")


def test_an_index_factory_is_checked_before_training() -> None:
    check_factory("IVF64,PQ16", {128, 64}, None)
    check_factory("IVF64,PQ16", {128, 64}, 9984)
    with pytest.raises(LossbenchError, match=r"invalid index factory 'garbage' for 128-d embeddings"):
        check_factory("garbage", {128}, None)
    with pytest.raises(LossbenchError, match=r"'PQ48' for 128-d.*multiple"):
        check_factory("PQ48", {128}, None)
    with pytest.raises(LossbenchError, match=r"index.train_size = 100000 is too small .* at least 159744"):
        check_factory("IVF4096,Flat", {128}, 100_000)


# 9 ------------------------------------------------------------------------------------ query domain coverage


def domain_folder(root: Path) -> Path:
    """8 identities with photo + render; id_6 has no photo, id_7 only photos."""
    for k in range(8):
        domains = {6: ("render",), 7: ("photo",)}.get(k, ("photo", "render"))
        for domain in domains:
            for i in range(2):
                image(root / f"id_{k}" / domain / f"{i}.png", 1000 * k + 10 * len(domain) + i)
    return root


def test_identities_without_the_query_domain_are_named_and_can_go_to_train(tmp_path: Path) -> None:
    root = domain_folder(tmp_path / "raw")
    settings = {"query_domain": "photo", "val_ids": 0.25, "test_ids": 0.5, "seed": 1}  # id_6 in val, id_7 in test
    mixed = [
        {"identity": "id_6", "split": "val", "lacks": "query_domain"},
        {"identity": "id_7", "split": "test", "lacks": "other_domains"},
    ]
    with pytest.warns(UserWarning, match=r"2 val/test identities lack query_domain='photo'.*drawn at random"):
        report = preprocess_dataset(root, tmp_path / "a", **{**SETTINGS, **settings})
    assert report["without_query_domain"] == {"policy": "random", "identities": mixed}
    _, manifest = load_processed(tmp_path / "a")
    assert manifest.loc[manifest["identity"] == "id_7", "split"].iloc[0] == "test"

    report = preprocess(root, tmp_path / "b", query_domain_missing="train", **settings)
    _, manifest = load_processed(tmp_path / "b")
    assert set(manifest.loc[manifest["identity"].isin(["id_6", "id_7"]), "split"]) == {"train"}
    assert report["without_query_domain"] == {"policy": "train", "identities": mixed}
    assert report["identities"] == {"train": 4, "val": 1, "test": 3}


# 11 ---------------------------------------------------------------------------------------------- check-data


def test_check_data_reports_every_problem_and_fails(tmp_path: Path, capsys, unreadable: set[str]) -> None:
    root = identities(tmp_path / "raw")
    assert cli(["check-data", str(root)]) == 0
    assert "no problems found" in capsys.readouterr().out

    (root / "id_0" / "gone.png").symlink_to(tmp_path / "missing.png")
    (root / "id_0" / "loop.png").symlink_to(root / "id_0" / "loop.png")
    (root / "id_1" / "more").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(root / "id_2" / "pipe")
    with open(os.path.join(os.fsencode(root / "id_3"), b"\xff.png"), "wb"):
        pass
    image(root / "id_4" / "locked" / "x.png", 1)
    image(root / "id_5" / "secret.png", 2)
    unreadable |= {"locked"}
    real_open = open

    def fake_open(path, *args, **kwargs):
        if Path(path).name == "secret.png":
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    import lossbench.data.audit as audit_module

    audit_module.open = fake_open
    try:
        assert cli(["check-data", str(root)]) == 1
    finally:
        del audit_module.open
    out = capsys.readouterr().out.splitlines()
    assert out[:-1] == [
        "id_0/gone.png: broken_symlink (dangling symlink (-> " + str(tmp_path / "missing.png") + ": no such file))",
        "id_0/loop.png: broken_symlink (symlink loop (-> " + str(root / "id_0" / "loop.png") + "))",
        f"id_1/more/: directory_symlink (-> {tmp_path})",
        "id_4/locked/: unreadable (PermissionError: Permission denied)",
        "id_5/secret.png: unreadable (PermissionError: Permission denied)",
        "id_2/pipe: special_file (named pipe (FIFO))",
        "id_3/\\xff.png: name_not_utf8 (the name is not valid UTF-8: rename it)",
    ]
    assert "7 problem(s)" in out[-1]


def test_check_data_names_a_misread_layout_and_a_missing_folder(tmp_path: Path, capsys) -> None:
    for split in ("train", "test"):
        identities(tmp_path / "raw" / split, count=2)
    assert cli(["check-data", str(tmp_path / "raw")]) == 1
    assert "layout (data folder" in capsys.readouterr().out
    assert cli(["check-data", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().out


# 13 ------------------------------------------------------------------------- hidden folders, warning format


def test_hidden_folders_are_listed_but_not_counted_as_skipped_files(tmp_path: Path) -> None:
    root = identities(tmp_path / "raw")
    image(root / "id_0" / ".thumbs" / "a.png", 1)
    image(root / ".git" / "x.png", 2)
    (root / "id_1" / ".DS_Store").write_bytes(b"\x00")
    report = preprocess(root, tmp_path / "out")
    assert report["skipped"]["hidden"] == ["id_1/.DS_Store"] and report["skipped_total"] == 1
    assert [(f["path"], f["reason"]) for f in report["skipped_folders"]] == [
        (".git/", "hidden"),
        ("id_0/.thumbs/", "hidden"),
    ]


def test_stage_warnings_print_one_line_without_source(capsys) -> None:
    def main() -> str:
        warnings.warn("skipped 2 corrupt file(s): a.png, b.png", UserWarning, stacklevel=2)
        return "done"

    run_stage("preprocess", main)
    err = capsys.readouterr().err
    assert err == "lossbench preprocess: warning: skipped 2 corrupt file(s): a.png, b.png\n"


def test_the_weights_stage_refuses_a_bad_index_factory_before_any_training(tmp_path: Path, copy_project) -> None:
    """Wiring, not just the check: `python -m stages.weights` (first in every repro) stops with one line."""
    project = copy_project(tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["index"]["factory"] = "garbage"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run(
        [sys.executable, "-m", "stages.weights"], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("lossbench weights: error: invalid index factory 'garbage'"), result.stderr
    assert not (project / "data" / "weights.json").exists()
