"""Raw folder -> manifest + images: formats, skips, duplicates, drops, layouts, errors, store."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lossbench.core.errors import LossbenchError
from lossbench.data.preprocess import preprocess_dataset, resize_center_crop
from lossbench.data.scan import UnusableImage, open_rgb
from lossbench.data.store import load_processed

SIZE = 16
LIMIT = 89478485  # data.max_image_pixels (Pillow's default)
SETTINGS = {
    "image_size": SIZE,
    "val_ids": 0.15,
    "test_ids": 0.25,
    "folds": 0,
    "fold": 0,
    "queries_per_id": 2,
    "query_domain": None,
    "query_domain_missing": "random",
    "min_images_per_id": 2,
    "max_image_pixels": LIMIT,
    "seed": 0,
}
"""preprocess_dataset takes every setting (params.yaml gives them); tests override some."""


def preprocess(original: Path, out_dir: Path, **settings) -> dict:
    return preprocess_dataset(original, out_dir, **{**SETTINGS, **settings})


RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def noise(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(path: Path, img: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def rotated_jpeg(path: Path) -> Path:
    """Stored 40 wide x 20 tall, top half red, bottom half blue, EXIF orientation 6 (rotate 90 deg clockwise).

    Displayed upright it is 20 wide x 40 tall with the left half blue and the right half red.
    """
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:10] = RED
    pixels[10:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    return save(path, Image.fromarray(pixels), exif=exif, quality=95)


def rgba_half_transparent() -> Image.Image:
    """24 tall x 32 wide: left half fully transparent, right half opaque blue."""
    pixels = np.zeros((24, 32, 4), np.uint8)
    pixels[:, 16:] = (*BLUE, 255)
    return Image.fromarray(pixels, "RGBA")


def rgb_sha1(rgb: np.ndarray) -> str:
    """Independent reference of the documented hash: sha1 of "HxWx3:" + RGB bytes."""
    return hashlib.sha1(f"{rgb.shape[0]}x{rgb.shape[1]}x3:".encode() + rgb.tobytes()).hexdigest()


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Every format, every kind of bad file, duplicates, an empty and a one-image identity."""
    root = tmp_path / "raw"
    grey = noise(24, 32, 1, channels=1)
    save(root / "ann" / "grey.pgm", Image.fromarray(grey, "L"))
    save(root / "ann" / "grey_again.png", Image.fromarray(grey, "L"))  # re-encoded: same pixels
    save(root / "ann" / "rgba.png", rgba_half_transparent())
    shutil.copy(root / "ann" / "rgba.png", root / "ann" / "zz_copy.png")  # byte copy
    save(root / "ann" / "cmyk.jpg", Image.fromarray(noise(30, 20, 2)).convert("CMYK"), quality=95)

    palette = Image.fromarray(noise(20, 20, 3)).quantize(8)
    save(root / "bob" / "palette.gif", palette, transparency=0)
    rotated_jpeg(root / "bob" / "rotated.jpg")
    save(root / "bob" / "grey16.pgm", Image.fromarray(noise(20, 24, 4, 1).astype(np.uint16) * 257))
    broken = save(root / "bob" / "broken.jpg", Image.fromarray(noise(40, 40, 5)), quality=95).read_bytes()
    (root / "bob" / "broken.jpg").write_bytes(broken[: len(broken) * 2 // 3])
    (root / "bob" / "notes.jpg").write_text("not really a jpeg\n")
    (root / "bob" / "readme.txt").write_text("hello\n")
    (root / "bob" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")

    for name, seed in (("x", 10), ("y", 11), ("shared", 12)):
        save(root / "cat" / f"{name}.png", Image.fromarray(noise(20, 20, seed)))
    (root / "dan").mkdir()
    shutil.copy(root / "cat" / "shared.png", root / "dan" / "shared.png")  # same image, two identities
    for name, seed in (("p", 13), ("q", 14)):
        save(root / "dan" / f"{name}.png", Image.fromarray(noise(20, 20, seed)))
    save(root / "eve" / "only.png", Image.fromarray(noise(20, 20, 15)))
    (root / "fay").mkdir()
    return root


def test_mixed_folder_manifest_and_report(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "processed"
    with pytest.warns(UserWarning) as caught:
        report = preprocess(mixed, out, image_size=SIZE, seed=0, val_ids=0.0, test_ids=0.5)
    messages = " | ".join(str(w.message) for w in caught)
    for word in ("corrupt", "not_an_image", "hidden", "within identities", "several identities", "fewer than 2"):
        assert word in messages

    images, manifest = load_processed(out)
    expected = pd.DataFrame(
        [
            ("ann/cmyk.jpg", "ann", 0, ""),
            ("ann/grey.pgm", "ann", 0, ""),
            ("ann/rgba.png", "ann", 0, ""),
            ("bob/grey16.pgm", "bob", 1, ""),
            ("bob/palette.gif", "bob", 1, ""),
            ("bob/rotated.jpg", "bob", 1, ""),
            ("cat/x.png", "cat", 2, ""),
            ("cat/y.png", "cat", 2, ""),
            ("dan/p.png", "dan", 3, ""),
            ("dan/q.png", "dan", 3, ""),
        ],
        columns=["path", "identity", "label", "domain"],
    )
    pd.testing.assert_frame_equal(manifest[expected.columns], expected, check_dtype=False)
    assert manifest["row"].tolist() == list(range(10))
    assert images.shape == (10, SIZE, SIZE, 3) and images.dtype == np.uint8
    grey = np.repeat(noise(24, 32, 1, channels=1)[..., None], 3, axis=2)
    assert manifest.loc[manifest["path"] == "ann/grey.pgm", "sha1"].item() == rgb_sha1(grey)

    splits = manifest.groupby("identity")["split"].agg(set)
    assert all(len(s) == 1 for s in splits)
    assert sorted(s.pop() for s in splits) == ["test", "test", "train", "train"]
    for _identity, group in manifest.groupby("identity"):
        roles = group["role"].value_counts().to_dict()
        if group["split"].iloc[0] == "train":
            assert roles == {"train": len(group)}
        else:
            queries = min(2, len(group) - 1)  # queries_per_id=2, always one gallery image left
            assert roles == {"query": queries, "gallery": len(group) - queries}

    assert report["layout"] == "image_folder"
    assert report["images"] == 10 and report["classes"] == 4
    assert report["identities"] == {"train": 2, "val": 0, "test": 2}
    assert (report["folds"], report["fold"]) == (0, 0) and "fold" not in report["summary"]
    assert sum(report["images_per_split"].values()) == 10 and report["images_per_split"]["challenge"] == 0
    assert {reason: paths for reason, paths in report["skipped"].items() if paths} == {
        "hidden": ["bob/.DS_Store"],
        "not_an_image": ["bob/notes.jpg", "bob/readme.txt"],
        "corrupt": ["bob/broken.jpg"],
    }
    assert report["skipped_total"] == 4
    assert set(report["skip_causes"]) == {"bob/broken.jpg", "bob/notes.jpg", "bob/readme.txt"}  # each with its cause
    assert "truncated" in report["skip_causes"]["bob/broken.jpg"]
    assert report["dropped_identities"] == [
        {"identity": "eve", "reason": "too_few_images", "images": 1},
        {"identity": "fay", "reason": "empty", "images": 0},
    ]
    assert report["duplicates"]["within_identity"] == [
        {"identity": "ann", "kept": "ann/grey.pgm", "removed": ["ann/grey_again.png"]},
        {"identity": "ann", "kept": "ann/rgba.png", "removed": ["ann/zz_copy.png"]},
    ]
    [cross] = report["duplicates"]["cross_identity"]
    assert cross["identities"] == ["cat", "dan"] and cross["paths"] == ["cat/shared.png", "dan/shared.png"]
    assert report["duplicates_removed"] == {"within_identity": 2, "cross_identity": 2}
    assert report["ignored"] == [] and report["domains"] == {}
    json.dumps(report)  # serialisable as is

    # pixels: the EXIF rotation was applied (left half blue, right half red) and RGBA sits on white
    rotated = images[manifest.index[manifest["path"] == "bob/rotated.jpg"][0]].astype(int)
    assert np.abs(rotated[:, :5] - BLUE).max() < 40 and np.abs(rotated[:, -5:] - RED).max() < 40
    rgba = images[manifest.index[manifest["path"] == "ann/rgba.png"][0]].astype(int)
    assert np.abs(rgba[:, :4] - WHITE).max() < 10 and np.abs(rgba[:, -4:] - BLUE).max() < 10
    grey_row = images[manifest.index[manifest["path"] == "bob/grey16.pgm"][0]]
    assert (grey_row[..., 0] == grey_row[..., 1]).all() and (grey_row[..., 1] == grey_row[..., 2]).all()
    assert not list(out.glob(".*"))  # no scratch files left behind


def test_same_result_with_a_process_pool_and_same_seed(mixed: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        serial = preprocess(mixed, tmp_path / "a", image_size=SIZE, workers=1, val_ids=0.0, test_ids=0.5)
    with pytest.warns(UserWarning):
        pooled = preprocess(mixed, tmp_path / "b", image_size=SIZE, workers=2, val_ids=0.0, test_ids=0.5)
    assert serial == pooled
    (images_a, manifest_a), (images_b, manifest_b) = load_processed(tmp_path / "a"), load_processed(tmp_path / "b")
    np.testing.assert_array_equal(images_a, images_b)
    pd.testing.assert_frame_equal(manifest_a, manifest_b)


def test_identity_folds_partition_the_test_identities_and_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    for k in range(10):
        for i in range(2 + k % 3):
            save(root / f"id{k}" / f"{i}.png", Image.fromarray(noise(20, 20, 100 * k + i)))
    tested: list[str] = []
    for fold in range(5):
        report = preprocess(root, tmp_path / f"fold{fold}", folds=5, fold=fold, workers=1)
        _, manifest = load_processed(tmp_path / f"fold{fold}")
        assert (report["folds"], report["fold"]) == (5, fold)
        assert f"train/val/test identities 6/2/2, test = identity fold {fold} (folds 0..4))" in report["summary"]
        tested += sorted(manifest.loc[manifest["split"] == "test", "identity"].unique())
    assert sorted(tested) == [f"id{k}" for k in range(10)]  # each identity is a test identity in exactly one fold


def test_decoding_modes_to_rgb(tmp_path: Path) -> None:
    img = open_rgb(rotated_jpeg(tmp_path / "r.jpg"), LIMIT)
    assert img.size == (20, 40)  # width, height after the EXIF rotation
    pixels = np.asarray(img).astype(int)
    assert np.abs(pixels[:, :8] - BLUE).max() < 40 and np.abs(pixels[:, -8:] - RED).max() < 40

    rgba = rgba_half_transparent()
    alpha = np.asarray(rgba).copy()
    alpha[0, 20] = (255, 0, 0, 128)  # half-transparent red over white
    pixels = np.asarray(open_rgb(save(tmp_path / "a.png", Image.fromarray(alpha, "RGBA")), LIMIT))
    assert tuple(pixels[0, 0]) == WHITE and tuple(pixels[5, 20]) == BLUE
    assert pixels[0, 20, 0] == 255 and abs(int(pixels[0, 20, 1]) - 127) <= 1

    la = Image.fromarray(np.dstack([np.full((4, 4), 0, np.uint8), np.array([[0, 255] * 2] * 4, np.uint8)]), "LA")
    assert np.asarray(open_rgb(save(tmp_path / "la.png", la), LIMIT))[0, :2].tolist() == [[255] * 3, [0] * 3]

    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 255, 0, 200, 10, 30] + [0] * 762)
    palette.putpixel((0, 0), 0)
    pixels = np.asarray(open_rgb(save(tmp_path / "p.gif", palette, transparency=0), LIMIT))
    assert tuple(pixels[0, 0]) == WHITE and tuple(pixels[1, 1]) == (200, 10, 30)

    cmyk = Image.new("CMYK", (8, 8), (0, 255, 0, 0))  # magenta
    magenta = np.asarray(open_rgb(save(tmp_path / "c.jpg", cmyk, quality=95), LIMIT)).astype(int)
    assert np.abs(magenta - (255, 0, 255)).max() < 8

    deep = np.array([[0, 65535, 32896, 257]], np.uint16)
    path = tmp_path / "g16.pgm"
    path.write_bytes(b"P5\n4 1\n65535\n" + deep.astype(">u2").tobytes())
    assert np.asarray(open_rgb(path, LIMIT))[0, :, 0].tolist() == [0, 255, 128, 1]

    frames = [Image.new("RGB", (6, 6), c) for c in (RED, BLUE)]
    save(tmp_path / "anim.gif", frames[0], save_all=True, append_images=frames[1:])
    assert tuple(np.asarray(open_rgb(tmp_path / "anim.gif", LIMIT))[0, 0]) == RED
    for ext in ("webp", "bmp"):
        assert open_rgb(save(tmp_path / f"x.{ext}", Image.new("RGB", (5, 3), BLUE), lossless=True), LIMIT).size == (
            5,
            3,
        )


def test_resize_scales_the_shorter_side_and_center_crops() -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)  # 40 wide: red | green (middle 20 columns) | blue
    pixels[:, :10], pixels[:, 10:30], pixels[:, 30:] = RED, (0, 255, 0), BLUE
    out = resize_center_crop(Image.fromarray(pixels), 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert np.abs(out[:, 1:-1].astype(int) - (0, 255, 0)).max() < 20  # only the center survives
    upscaled = resize_center_crop(Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 0, 2))), 30)
    assert upscaled.shape == (30, 30, 3) and np.abs(upscaled[2:-2].astype(int) - (0, 255, 0)).max() < 20


def test_decompression_bombs_are_refused_above_the_pixel_limit_param(tmp_path: Path) -> None:
    warned = save(tmp_path / "warned.png", Image.new("RGB", (30, 20)))  # 600 px: PIL only warns at limit 500
    refused = save(tmp_path / "refused.png", Image.new("RGB", (40, 40)))  # 1600 px: PIL raises at limit 500
    for path in (warned, refused):
        with pytest.raises(UnusableImage) as exc:
            open_rgb(path, 500)
        assert exc.value.reason == "too_large" and "data.max_image_pixels = 500" in exc.value.detail
        assert open_rgb(path, 1600).size in ((30, 20), (40, 40))  # a large legitimate photo: raise the limit
    assert open_rgb(save(tmp_path / "ok.png", Image.new("RGB", (20, 20))), 500).size == (20, 20)
    assert Image.MAX_IMAGE_PIXELS == LIMIT  # Pillow's global is restored

    root = tmp_path / "raw"
    for identity in "abcd":
        for i in range(2):
            save(root / identity / f"{i}.png", Image.fromarray(noise(20, 20, ord(identity) * 10 + i)))
    save(root / "a" / "huge.png", Image.new("RGB", (30, 20)))
    settings = {"image_size": SIZE, "workers": 1, "val_ids": 0.0, "test_ids": 0.5}
    with pytest.warns(UserWarning, match="too_large"):
        report = preprocess(root, tmp_path / "out", max_image_pixels=500, **settings)
    assert report["skipped"]["too_large"] == ["a/huge.png"] and report["images"] == 8
    assert "data.max_image_pixels = 500" in report["skip_causes"]["a/huge.png"]
    assert preprocess(root, tmp_path / "out", max_image_pixels=600, **settings)["images"] == 9


def test_domain_aware_query_gallery(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    for k, identity in enumerate(["p1", "p2", "p3", "p4", "p5"]):
        for domain, count in (("photo", 3), ("render", 2)):
            for i in range(count):
                pixels = noise(20, 20, 100 * k + 10 * len(domain) + i)
                save(root / identity / domain / f"{i}.png", Image.fromarray(pixels))
    report = preprocess(root, tmp_path / "out", image_size=SIZE, query_domain="photo", val_ids=0.0, test_ids=0.4)
    _, manifest = load_processed(tmp_path / "out")
    assert report["domains"] == {"photo": 15, "render": 10}
    assert set(manifest["domain"]) == {"photo", "render"}
    evaluated = manifest[manifest["split"].isin(["val", "test"])]
    assert evaluated["identity"].nunique() == 2
    for _, group in evaluated.groupby("identity"):
        assert (group.loc[group["role"] == "query", "domain"] == "photo").sum() == 2
        assert set(group.loc[group["role"] == "gallery", "domain"]) == {"render"}
        assert (group["role"] == "gallery").sum() == 2 and (group["role"] == "unused").sum() == 1
    assert report["images_per_role"]["test"] == {"query": 4, "gallery": 4, "unused": 2}
    assert report["without_query_domain"] == {"policy": "random", "identities": []}

    preprocess(root, tmp_path / "mixed", image_size=SIZE, val_ids=0.0, test_ids=0.4)  # no query_domain
    _, manifest = load_processed(tmp_path / "mixed")
    assert set(manifest["role"]) == {"train", "query", "gallery"}
    with pytest.raises(LossbenchError, match="sketch.*photo"):
        preprocess(root, tmp_path / "bad", image_size=SIZE, query_domain="sketch")


def test_challenge_layout(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    for k, identity in enumerate("abcd"):
        for i in range(3):
            save(root / "train" / identity / f"{i}.png", Image.fromarray(noise(20, 20, 10 * k + i)))
    for i in range(2):
        save(root / "test" / "query" / f"q{i}.jpg", Image.fromarray(noise(20, 20, 50 + i)))
    save(root / "test" / "gallery" / "g0.png", Image.fromarray(noise(20, 20, 60)))
    shutil.copy(root / "train" / "a" / "0.png", root / "test" / "gallery" / "g1.png")
    (root / "notes.md").write_text("stray\n")

    with pytest.warns(UserWarning) as caught:
        report = preprocess(root, tmp_path / "out", image_size=SIZE, val_ids=0.0, test_ids=0.5)
    messages = " | ".join(str(w.message) for w in caught)
    assert "challenge test set" in messages and "notes.md" in messages
    _, manifest = load_processed(tmp_path / "out")
    challenge = manifest[manifest["split"] == "challenge"]
    assert challenge[["path", "identity", "label", "role", "domain"]].values.tolist() == [
        ["test/gallery/g0.png", "", -1, "gallery", ""],
        ["test/gallery/g1.png", "", -1, "gallery", ""],
        ["test/query/q0.jpg", "", -1, "query", ""],
        ["test/query/q1.jpg", "", -1, "query", ""],
    ]
    labelled = manifest[manifest["split"] != "challenge"]
    assert len(labelled) == 12 and labelled["path"].str.startswith("train/").all()
    assert sorted(labelled["label"].unique()) == [0, 1, 2, 3]
    assert report["layout"] == "challenge"
    assert report["images_per_split"]["challenge"] == 4
    assert report["images_per_role"]["challenge"] == {"query": 2, "gallery": 2}
    [dup] = report["duplicates"]["train_challenge"]
    assert dup["train"] == ["train/a/0.png"] and dup["challenge"] == ["test/gallery/g1.png"]
    assert report["ignored"] == [{"path": "notes.md", "reason": "not_train_or_test"}]


def test_bad_roots_are_clear_errors(tmp_path: Path) -> None:
    both_layouts = "image folder.*challenge"
    with pytest.raises(LossbenchError, match=f"does not exist.*{both_layouts}"):
        preprocess(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "file.zip").write_bytes(b"PK")
    with pytest.raises(LossbenchError, match=f"is a file.*{both_layouts}"):
        preprocess(tmp_path / "file.zip", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LossbenchError, match=f"no identity folders.*{both_layouts}"):
        preprocess(tmp_path / "empty", tmp_path / "out")
    for name in ("a", "b"):
        (tmp_path / "hollow" / name).mkdir(parents=True)
    with pytest.warns(UserWarning, match="empty"), pytest.raises(LossbenchError, match="min_images_per_id=2"):
        preprocess(tmp_path / "hollow", tmp_path / "out")
    with pytest.raises(LossbenchError, match="queries_per_id"):
        preprocess(tmp_path / "hollow", tmp_path / "out", queries_per_id=0)
    with pytest.raises(LossbenchError, match="dvc repro preprocess"):
        load_processed(tmp_path / "never_written")
