"""Synthetic face generator: determinism, layout, identity signal, domain style gap, argument checks."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from lossbench.core.errors import LossbenchError
from lossbench.data import synthetic
from lossbench.data.synthetic import (
    domain_counts,
    generate_dataset,
    identity_traits,
    image_nuisance,
    pixel_retrieval_top1,
    render_face,
    sample_nuisance,
    sample_traits,
)

SMALL = {"identities": 6, "images_per_id": 4, "image_size": 48}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _neutral(nuisance: synthetic.Nuisance) -> synthetic.Nuisance:
    """The same pose, light, expression, background and no occlusion for every identity."""
    return dataclasses.replace(
        nuisance,
        angle=0.0,
        scale=1.0,
        shift=(0.0, 0.0),
        yaw=0.0,
        light_strength=0.0,
        brightness=1.0,
        contrast=1.0,
        smile=0.2,
        eye_open=1.0,
        occlusion="none",
    )


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic")
    return root, generate_dataset(root, seed=0, **SMALL)


def test_same_seed_gives_byte_identical_files(small_dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = small_dataset
    generate_dataset(tmp_path, seed=0, **SMALL)
    first, second = _files(root), _files(tmp_path)
    assert len(first) == 24
    assert first == second


def test_different_seed_changes_every_image(small_dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = small_dataset
    generate_dataset(tmp_path, seed=1, **SMALL)
    first, second = _files(root), _files(tmp_path)
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first)


def test_images_do_not_depend_on_dataset_size(small_dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = small_dataset
    generate_dataset(tmp_path, seed=0, identities=2, images_per_id=3, image_size=48)
    small, full = _files(tmp_path), _files(root)
    assert len(small) == 6
    assert all(full[name] == data for name, data in small.items())


def test_layout_counts_and_summary(tmp_path: Path) -> None:
    summary = generate_dataset(tmp_path, identities=3, images_per_id=5, image_size=32, seed=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["id_0000", "id_0001", "id_0002"]
    for folder in tmp_path.iterdir():
        assert sorted(p.name for p in folder.iterdir()) == ["photo", "render"]
        assert sorted(p.name for p in (folder / "photo").iterdir()) == ["00.png", "02.png", "04.png"]
        assert sorted(p.name for p in (folder / "render").iterdir()) == ["01.png", "03.png"]
    with Image.open(tmp_path / "id_0001" / "render" / "03.png") as image:
        assert (image.mode, image.size, image.format) == ("RGB", (32, 32), "PNG")
    assert summary["identities"] == 3 and summary["images"] == 15
    assert summary["images_per_domain"] == {"photo": 9, "render": 6}


def test_domain_counts_split_evenly_first_domains_take_the_rest() -> None:
    assert domain_counts(12, ("photo", "render")) == {"photo": 6, "render": 6}
    assert domain_counts(7, ("a", "b", "c")) == {"a": 3, "b": 2, "c": 2}


def test_regenerating_removes_stale_identities_only(tmp_path: Path) -> None:
    generate_dataset(tmp_path, identities=4, images_per_id=2, image_size=16)
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "other").mkdir()
    generate_dataset(tmp_path, identities=2, images_per_id=2, image_size=16, domains=("render",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["id_0000", "id_0001", "notes.txt", "other"]
    assert not (tmp_path / "id_0000" / "photo").exists()


def test_identity_traits_vary_across_identities() -> None:
    traits = [identity_traits(0, k) for k in range(60)]
    assert len({t.hair_style for t in traits}) >= 7
    assert len({t.skin for t in traits}) == 60
    for field in ("glasses", "beard"):
        share = np.mean([getattr(t, field) != "none" for t in traits])
        assert 0.2 < share < 0.8, field
    assert identity_traits(0, 3) == identity_traits(0, 3)
    assert identity_traits(0, 3) != identity_traits(1, 3)


def test_nuisance_varies_and_sometimes_occludes() -> None:
    rng = np.random.default_rng(0)
    nuisances = [sample_nuisance(rng) for _ in range(100)]
    assert np.std([n.angle for n in nuisances]) > 5
    assert np.std([n.yaw for n in nuisances]) > 0.2
    occluded = np.mean([n.occlusion != "none" for n in nuisances])
    assert 0.15 < occluded < 0.6
    assert len({n.occlusion for n in nuisances}) == len(synthetic.OCCLUSIONS)


def test_different_identities_give_different_images(small_dataset: tuple[Path, dict]) -> None:
    root, _ = small_dataset
    for domain in ("photo", "render"):
        images = [_pixels(Image.open(sorted((folder / domain).glob("*.png"))[0])) for folder in sorted(root.iterdir())]
        distances = [np.abs(a - b).mean() for a, b in itertools.combinations(images, 2)]
        assert min(distances) > 10


def test_identity_alone_changes_the_face() -> None:
    nuisance = _neutral(image_nuisance(0, 0, 0))
    faces = [_pixels(render_face(identity_traits(0, k), nuisance, "render", 64)) for k in range(6)]
    distances = [np.abs(a - b).mean() for a, b in itertools.combinations(faces, 2)]
    assert min(distances) > 3


def test_identity_is_recognisable_across_domains_when_nuisance_is_fixed() -> None:
    """With pose, light and background held fixed, each photo's nearest render is the same person."""
    nuisance = _neutral(image_nuisance(0, 0, 0))
    traits = [identity_traits(3, k) for k in range(20)]

    def matrix(domain: str) -> np.ndarray:
        rows = np.stack([_pixels(render_face(t, nuisance, domain, 48)).ravel() for t in traits])
        rows -= rows.mean(axis=1, keepdims=True)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    nearest = np.argmax(matrix("photo") @ matrix("render").T, axis=1)
    assert np.mean(nearest == np.arange(20)) >= 0.9


def test_raw_pixels_retrieve_poorly_across_domains(tmp_path: Path) -> None:
    generate_dataset(tmp_path, identities=20, images_per_id=4, image_size=48, seed=0)
    top1 = pixel_retrieval_top1(tmp_path, size=32)
    assert top1 < 0.35


def _noise_level(image: Image.Image) -> float:
    """Median absolute residual from a 3×3 median filter: ~0 on flat-colour art, large with sensor noise."""
    return float(np.median(np.abs(_pixels(image) - _pixels(image.filter(ImageFilter.MedianFilter(3))))))


def _saturation(image: Image.Image) -> float:
    return float(np.asarray(image.convert("HSV"))[..., 1].mean())


def test_domains_differ_in_style_for_the_same_identity(small_dataset: tuple[Path, dict]) -> None:
    root, _ = small_dataset
    for folder in sorted(root.iterdir()):
        photos = [Image.open(p) for p in sorted((folder / "photo").glob("*.png"))]
        renders = [Image.open(p) for p in sorted((folder / "render").glob("*.png"))]
        assert max(_noise_level(r) for r in renders) < 0.5
        assert min(_noise_level(p) for p in photos) > 1.5
        assert np.mean([_saturation(r) for r in renders]) > np.mean([_saturation(p) for p in photos]) + 20


@pytest.mark.parametrize(
    ("registry", "field"),
    [
        (synthetic.HAIR_STYLES, "hair_style"),
        (synthetic.NOSE_STYLES, "nose_style"),
        (synthetic.BEARD_STYLES, "beard"),
        (synthetic.GLASSES_STYLES, "glasses"),
        (synthetic.EYE_SHAPES, "eye_shape"),
        (synthetic.OCCLUSIONS, "occlusion"),
    ],
)
def test_every_registered_option_draws_something_different(registry: dict, field: str) -> None:
    traits = dataclasses.replace(sample_traits(np.random.default_rng(5)), hair_color=(30, 20, 20))
    nuisance = _neutral(sample_nuisance(np.random.default_rng(6)))
    images = []
    for option in registry:
        if hasattr(traits, field):
            image = render_face(dataclasses.replace(traits, **{field: option}), nuisance, "render", 64)
        else:
            image = render_face(traits, dataclasses.replace(nuisance, **{field: option}), "render", 64)
        images.append(_pixels(image))
    for a, b in itertools.combinations(images, 2):
        assert np.abs(a - b).mean() > 0.02


def test_render_face_is_rgb_of_requested_size() -> None:
    traits, nuisance = identity_traits(0, 0), image_nuisance(0, 0, 0)
    for domain in synthetic.DOMAIN_STYLES:
        image = render_face(traits, nuisance, domain, 40)
        assert (image.mode, image.size) == ("RGB", (40, 40))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"identities": 1}, "synthetic.identities"),
        ({"identities": 2.5}, "synthetic.identities"),
        ({"images_per_id": 1}, "synthetic.images_per_id"),
        ({"image_size": 15}, "synthetic.image_size"),
        ({"seed": -1}, "synthetic.seed"),
        ({"domains": ()}, "synthetic.domains is empty"),
        ({"domains": ("photo", "photo")}, "duplicates"),
        ({"domains": ("photo", "sketch")}, "unknown domain 'sketch'"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(LossbenchError, match=message):
        generate_dataset(tmp_path / "out", **{**SMALL, **arguments})
    assert not (tmp_path / "out").exists()


def test_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file.png"
    target.write_bytes(b"not a folder")
    with pytest.raises(LossbenchError, match="not a folder"):
        generate_dataset(target, **SMALL)
