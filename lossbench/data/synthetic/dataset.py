"""The data set on disk: ``root/id_NNNN/<domain>/<nn>.png``, written by :func:`generate_dataset`."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lossbench.core.errors import LossbenchError
from lossbench.data.synthetic.nuisance import image_nuisance
from lossbench.data.synthetic.render import DOMAIN_STYLES, domain_style, render_face
from lossbench.data.synthetic.traits import identity_traits


def identity_name(index: int) -> str:
    """Folder name of identity ``index`` (``id_0000``)."""
    return f"id_{index:04d}"


def domain_counts(images_per_id: int, domains: Sequence[str]) -> dict[str, int]:
    """Images per identity in each domain: an even split, earlier domains take the remainder."""
    base, extra = divmod(images_per_id, len(domains))
    return {domain: base + (k < extra) for k, domain in enumerate(domains)}


def _validate(identities: int, images_per_id: int, image_size: int, domains: Sequence[str], seed: int) -> None:
    """Refuse arguments that cannot make a usable two-view retrieval set."""
    minimums = {
        "identities": (identities, 2),
        "images_per_id": (images_per_id, 2),
        "image_size": (image_size, 16),
        "seed": (seed, 0),
    }
    for key, (value, minimum) in minimums.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise LossbenchError(
                f"synthetic.{key} must be an integer >= {minimum} (got {value!r}); set it to {minimum} or more"
            )
    if not domains:
        raise LossbenchError(f"synthetic.domains is empty; list at least one of {sorted(DOMAIN_STYLES)}")
    if len(set(domains)) != len(domains):
        raise LossbenchError(f"synthetic.domains has duplicates ({list(domains)}); list each domain once")
    for domain in domains:
        domain_style(domain)


def generated_folders(root: Path) -> list[Path]:
    """The ``id_*`` identity folders under ``root``, sorted."""
    return sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"id_\d+", p.name))


def _clear_generated(root: Path) -> None:
    """Remove the ``id_*`` folders of a previous run (and nothing else)."""
    if root.exists() and not root.is_dir():
        raise LossbenchError(f"synthetic root {root} exists and is not a folder; remove it or pick another path")
    if root.is_dir():
        for folder in generated_folders(root):
            shutil.rmtree(folder)


def generate_dataset(
    root: str | Path,
    *,
    identities: int = 200,
    images_per_id: int = 12,
    image_size: int = 96,
    domains: Sequence[str] = ("photo", "render"),
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Write ``root/id_NNNN/<domain>/<nn>.png`` and return a summary of what was written.

    Image ``j`` of an identity goes to ``domains[j % len(domains)]`` and is named by ``j``; its pixels
    depend only on ``(seed, identity, j)``.
    """
    domains = tuple(domains)
    _validate(identities, images_per_id, image_size, domains, seed)
    root = Path(root)
    _clear_generated(root)
    width = max(2, len(str(images_per_id - 1)))
    for identity in tqdm(range(identities), desc="synthesize", unit="identity", disable=not progress):
        traits = identity_traits(seed, identity)
        for image in range(images_per_id):
            domain = domains[image % len(domains)]
            folder = root / identity_name(identity) / domain
            folder.mkdir(parents=True, exist_ok=True)
            picture = render_face(traits, image_nuisance(seed, identity, image), domain, image_size)
            picture.save(folder / f"{image:0{width}d}.png", format="PNG", compress_level=1)  # lossless: fastest level
    per_domain = domain_counts(images_per_id, domains)
    return {
        "root": str(root),
        "identities": identities,
        "images": identities * images_per_id,
        "images_per_id": images_per_id,
        "image_size": image_size,
        "seed": seed,
        "images_per_domain": {domain: count * identities for domain, count in per_domain.items()},
    }
