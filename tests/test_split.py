"""Identity splits (disjoint, sized, stratified, seeded; optionally from identity folds), query/gallery roles and
the leak check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lossbench.core.errors import LossbenchError
from lossbench.data.split import (
    check_no_leaks,
    identity_folds,
    identity_rng,
    query_gallery_roles,
    split_identities,
    split_sizes,
)

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


PINNED_VAL = ["id01", "id10", "id17", "id19", "id28", "id34"]
PINNED_TEST = ["id04", "id07", "id11", "id13", "id16", "id20", "id27", "id29", "id36", "id39"]


def test_default_split_is_pinned() -> None:
    """folds=0 is the split of every earlier version, bit for bit (the identities dealt to val and test)."""
    split_of = split_identities(COUNTS, 0.15, 0.25, seed=0)
    assert split_of == split_identities(COUNTS, 0.15, 0.25, 0, folds=0, fold=0)
    assert sorted(n for n, s in split_of.items() if s == "val") == PINNED_VAL
    assert sorted(n for n, s in split_of.items() if s == "test") == PINNED_TEST


PINNED_VAL = ["id01", "id10", "id17", "id19", "id28", "id34"]
PINNED_TEST = ["id04", "id07", "id11", "id13", "id16", "id20", "id27", "id29", "id36", "id39"]

FOLD_CASES = [(COUNTS, 5), ({f"p{i:02d}": 2 + (i * 7) % 19 for i in range(43)}, 5), (COUNTS, 3), (COUNTS, 2)]


def as_manifest(split_of: dict[str, str], counts: dict[str, int]) -> pd.DataFrame:
    """One row per image (content hash unique per image) for the leak check."""
    rows = [
        (f"{name}/{i}.png", name, split, f"{name}-{i}") for name, split in split_of.items() for i in range(counts[name])
    ]
    return manifest(rows)


@pytest.mark.parametrize(("counts", "folds"), FOLD_CASES, ids=lambda v: str(len(v)) if isinstance(v, dict) else str(v))
def test_fold_test_sets_partition_the_identities(counts: dict[str, int], folds: int) -> None:
    """Over fold = 0..K-1 the test sets are disjoint and cover every identity once; each split is leak-free and
    sized: test = the fold, val = val_ids of all identities (from the other folds), the rest train."""
    fold_of = identity_folds(counts, folds, seed=0)
    seen: list[str] = []
    for fold in range(folds):
        split_of = split_identities(counts, 0.15, 0.25, 0, folds=folds, fold=fold)  # test_ids=0.25 is unused
        assert sorted(split_of) == sorted(counts)
        check_no_leaks(as_manifest(split_of, counts))
        test = sorted(n for n, s in split_of.items() if s == "test")
        assert test == sorted(n for n, f in fold_of.items() if f == fold)
        sizes = pd.Series(split_of).value_counts().to_dict()
        assert sizes["val"] == split_sizes(len(counts), 0.15, 0.0)["val"]
        assert sizes["train"] == len(counts) - len(test) - sizes["val"]
        seen += test
    assert sorted(seen) == sorted(counts)  # disjoint (no repeats) and complete


@pytest.mark.parametrize(("counts", "folds"), FOLD_CASES, ids=lambda v: str(len(v)) if isinstance(v, dict) else str(v))
def test_folds_are_balanced_and_stratified_by_image_count(counts: dict[str, int], folds: int) -> None:
    """Fold sizes differ by at most one; the i-th largest image count of every fold comes from the same run of
    ``folds`` identities of similar count, so the folds' count distributions nearly match (a random partition
    does not)."""
    for seed in range(10):
        fold_of = identity_folds(counts, folds, seed)
        members = [sorted((counts[n] for n, f in fold_of.items() if f == k), reverse=True) for k in range(folds)]
        sizes = [len(m) for m in members]
        assert max(sizes) - min(sizes) <= 1, (seed, sizes)
        ranked = sorted(counts.values(), reverse=True)
        for i in range(min(sizes)):  # the i-th largest of each fold lies in the i-th run of the sorted counts
            run = ranked[i * folds : (i + 1) * folds]
            assert all(min(run) <= m[i] <= max(run) for m in members), (seed, i, members)
        overall = np.mean(list(counts.values()))
        assert all(abs(np.mean(m) - overall) <= 2.5 for m in members), (seed, members)
    rng = np.random.default_rng(0)
    names = sorted(COUNTS)
    random_means = [np.mean([COUNTS[n] for n in rng.permutation(names)[:8]]) for _ in range(200)]
    assert np.mean(np.abs(np.array(random_means) - np.mean(list(COUNTS.values()))) > 2.5) > 0.3  # the contrast


def test_folds_are_seeded_and_independent_of_fold_and_val_ids() -> None:
    assert identity_folds(COUNTS, 5, seed=3) == identity_folds(COUNTS, 5, seed=3)
    assert identity_folds(COUNTS, 5, seed=3) != identity_folds(COUNTS, 5, seed=4)
    equal = {name: 10 for name in COUNTS}  # all ties: the seed alone decides
    assert identity_folds(equal, 4, seed=0) != identity_folds(equal, 4, seed=1)
    fold_of = identity_folds(COUNTS, 4, seed=7)
    for val_ids in (0.0, 0.15, 0.5):
        split_of = split_identities(COUNTS, val_ids, 0.25, 7, folds=4, fold=2)
        assert {n for n, s in split_of.items() if s == "test"} == {n for n, f in fold_of.items() if f == 2}
        assert split_of == split_identities(COUNTS, val_ids, 0.9, 7, folds=4, fold=2)  # test_ids is not used
    assert "val" not in split_identities(COUNTS, 0.0, 0.25, 7, folds=4, fold=2).values()


def test_fold_val_split_is_stratified_by_image_count() -> None:
    overall = np.mean(list(COUNTS.values()))
    for seed in range(10):
        for fold in range(5):
            split_of = split_identities(COUNTS, 0.15, 0.25, seed, folds=5, fold=fold)
            val = [COUNTS[n] for n, s in split_of.items() if s == "val"]
            assert len(val) == 6 and abs(np.mean(val) - overall) <= 4.0, (seed, fold, val)
            assert min(val) <= 12 and max(val) >= 31, (seed, fold, val)


def test_fold_errors() -> None:
    few = {f"id{i}": 3 for i in range(4)}
    with pytest.raises(LossbenchError, match=r"4 usable identities are too few for folds=5: every fold needs"):
        split_identities(few, 0.15, 0.25, 0, folds=5, fold=0)
    with pytest.raises(
        LossbenchError,
        match=r"4 usable identities are too few for folds=2, val_ids=0.5: after the "
        r"test fold \(2\) and val \(2\) no identity is left to train",
    ):
        split_identities(few, 0.5, 0.25, 0, folds=2, fold=1)
    for folds, fold in ((5, 5), (1, 0), (0, 2), (3, -1)):  # params catch these at load; direct calls too
        with pytest.raises(LossbenchError, match=rf"folds={folds}, fold={fold}: use folds=0"):
            split_identities(COUNTS, 0.15, 0.25, 0, folds=folds, fold=fold)
    with pytest.raises(LossbenchError, match=r"folds=0: identity folds need folds >= 2"):
        identity_folds(COUNTS, 0, seed=0)


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
