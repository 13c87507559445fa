"""Identity splits (disjoint, sized, stratified, seeded), query/gallery roles and the leak check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lossbench.data.split import check_no_leaks, identity_rng, query_gallery_roles, split_identities, split_sizes
from lossbench.errors import LossbenchError

COUNTS = {f"id{i:02d}": 2 + i for i in range(40)}  # image counts 2..41


def test_split_sizes() -> None:
    assert split_sizes(40, 0.15, 0.25) == {"train": 24, "val": 6, "test": 10}
    assert split_sizes(4, 0.15, 0.25) == {"train": 2, "val": 1, "test": 1}  # at least one each
    assert split_sizes(10, 0.0, 0.25) == {"train": 7, "val": 0, "test": 3}
    assert split_sizes(20, 0.125, 0.125) == {"train": 14, "val": 3, "test": 3}  # 2.5 rounds up
    with pytest.raises(LossbenchError, match="2 usable identities are too few"):
        split_sizes(2, 0.15, 0.25)  # the fractions themselves are checked when params load (test_config)


def test_split_is_disjoint_complete_and_sized() -> None:
    split_of = split_identities(COUNTS, 0.15, 0.25, seed=0)
    assert sorted(split_of) == sorted(COUNTS)  # every identity exactly once (dict keys)
    assert pd.Series(split_of).value_counts().to_dict() == {"train": 24, "test": 10, "val": 6}


def test_split_is_seeded() -> None:
    assert split_identities(COUNTS, 0.15, 0.25, seed=3) == split_identities(COUNTS, 0.15, 0.25, seed=3)
    assert split_identities(COUNTS, 0.15, 0.25, seed=3) != split_identities(COUNTS, 0.15, 0.25, seed=4)
    equal = {name: 10 for name in COUNTS}  # all ties: the seed alone decides
    assert split_identities(equal, 0.15, 0.25, seed=0) != split_identities(equal, 0.15, 0.25, seed=1)


def test_split_is_stratified_by_image_count() -> None:
    """Each split's mean image count stays near the overall mean; a plain random split misses this for most seeds."""
    overall = np.mean(list(COUNTS.values()))
    for seed in range(20):
        split_of = split_identities(COUNTS, 0.15, 0.25, seed)
        for split in ("train", "val", "test"):
            counts = [COUNTS[name] for name, s in split_of.items() if s == split]
            assert abs(np.mean(counts) - overall) <= 3.5, (seed, split, counts)
            assert min(counts) <= 10 and max(counts) >= 33, (seed, split, counts)  # spans low and high counts


def test_query_gallery_roles_without_domains() -> None:
    roles = query_gallery_roles([""] * 5, 2, None, identity_rng(0, "a"))
    assert sorted(roles) == ["gallery"] * 3 + ["query"] * 2
    assert roles == query_gallery_roles([""] * 5, 2, None, identity_rng(0, "a"))
    picks = {tuple(query_gallery_roles([""] * 5, 2, None, identity_rng(seed, "a"))) for seed in range(10)}
    assert len(picks) > 1
    assert query_gallery_roles([""] * 2, 5, None, identity_rng(0, "a")).count("gallery") == 1
    assert query_gallery_roles([""], 2, None, identity_rng(0, "a")) == ["gallery"]


def test_query_gallery_roles_with_a_query_domain() -> None:
    domains = ["photo", "render", "photo", "render", "photo"]
    roles = query_gallery_roles(domains, 2, "photo", identity_rng(0, "a"))
    assert [r for r, d in zip(roles, domains) if d == "render"] == ["gallery", "gallery"]
    assert sorted(r for r, d in zip(roles, domains) if d == "photo") == ["query", "query", "unused"]
    roles = query_gallery_roles(domains, 5, "photo", identity_rng(0, "a"))
    assert roles == ["query", "gallery", "query", "gallery", "query"]
    only_photos = query_gallery_roles(["photo"] * 3, 2, "photo", identity_rng(0, "a"))  # falls back to random
    assert sorted(only_photos) == ["gallery", "query", "query"]


def manifest(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["path", "identity", "split", "sha1"])


def test_leak_check() -> None:
    clean = manifest(
        [
            ("a/1.png", "a", "train", "h1"),
            ("a/2.png", "a", "train", "h2"),
            ("b/1.png", "b", "val", "h3"),
            ("c/1.png", "c", "test", "h4"),
            ("test/query/x.png", "", "challenge", "h1"),  # the challenge set may repeat train images
        ]
    )
    check_no_leaks(clean)
    identity_leak = pd.concat([clean, manifest([("b/9.png", "b", "test", "h9")])])
    with pytest.raises(LossbenchError, match=r"identity leak: 'b'.*b/9.png \(b, test\)"):
        check_no_leaks(identity_leak)
    image_leak = pd.concat([clean, manifest([("d/1.png", "d", "test", "h2")])])
    with pytest.raises(LossbenchError, match=r"image leak.*a/2.png \(a, train\).*d/1.png \(d, test\)"):
        check_no_leaks(image_leak)
