"""Disjoint, seeded, count-stratified identity splits (optionally from K identity folds); query/gallery roles;
the leak check."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lossbench.core.errors import LossbenchError

SPLITS = ("train", "val", "test")
EVAL_ROLES = ("query", "gallery", "unused")


def _share(fraction: float, num_identities: int) -> int:
    """Identities for a positive ``fraction``: rounded half up, at least 1; none for 0."""
    return max(1, math.floor(fraction * num_identities + 0.5)) if fraction > 0 else 0


def split_sizes(num_identities: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Identities per split: fractions rounded half up, at least 1 for a positive fraction, rest train.

    The fractions are ``data.val_ids`` / ``data.test_ids``, validated when params load (lossbench/config/params.py);
    whether ``num_identities`` is enough for them is checked here."""
    sizes = {"val": _share(val_fraction, num_identities), "test": _share(test_fraction, num_identities)}
    sizes = {"train": num_identities - sizes["val"] - sizes["test"], **sizes}
    if sizes["train"] < 1:
        raise LossbenchError(
            f"{num_identities} usable identities are too few for val_ids={val_fraction}, test_ids={test_fraction}: "
            f"train, val and test each need at least one identity; add identities or set a fraction to 0"
        )
    return sizes


def _interleaved_labels(sizes: Mapping[str, int]) -> list[str]:
    """Split names in an order where every prefix holds each split in proportion to its size."""
    total = sum(sizes.values())
    taken = dict.fromkeys(sizes, 0)
    labels = []
    for k in range(1, total + 1):
        open_splits = [s for s in sizes if taken[s] < sizes[s]]
        best = max(open_splits, key=lambda s: sizes[s] * k / total - taken[s])
        taken[best] += 1
        labels.append(best)
    return labels


def _by_count(image_counts: Mapping[str, int], rng: np.random.Generator) -> list[str]:
    """Identity names by decreasing image count, ties broken by a seeded shuffle."""
    names = sorted(image_counts)
    tie_break = dict(zip(names, rng.permutation(len(names))))
    return sorted(names, key=lambda n: (-image_counts[n], tie_break[n]))


def _deal(order: Sequence[str], sizes: Mapping[str, int], rng: np.random.Generator) -> dict[str, str]:
    """Deal identities sorted by count to splits of ``sizes``: consecutive strata about ``n / smallest size``
    long are shuffled, then dealt out along a proportional split sequence."""
    order = list(order)
    stratum = math.ceil(len(order) / min(v for v in sizes.values() if v > 0))
    for start in range(0, len(order), stratum):
        block = order[start : start + stratum]
        order[start : start + stratum] = [block[i] for i in rng.permutation(len(block))]
    return dict(zip(order, _interleaved_labels(sizes)))


def _deal_folds(order: Sequence[str], folds: int, rng: np.random.Generator) -> dict[str, int]:
    """Each run of ``folds`` identities (sorted by count) gives one identity to each fold, in a seeded order;
    the last, shorter run gives its identities to distinct folds, so fold sizes differ by at most one."""
    fold_of: dict[str, int] = {}
    for start in range(0, len(order), folds):
        block = order[start : start + folds]
        fold_of.update(zip(block, rng.permutation(folds)[: len(block)].tolist()))
    return fold_of


def _check_folds(num_identities: int, folds: int, fold: int) -> None:
    if folds == 0 and fold == 0:
        return
    if folds < 2 or not 0 <= fold < folds:  # params are validated at load (config.py); this guards direct calls
        raise LossbenchError(
            f"folds={folds}, fold={fold}: use folds=0 (no folds, fold=0) or folds >= 2 and 0 <= fold < folds"
        )
    if num_identities < folds:
        raise LossbenchError(
            f"{num_identities} usable identities are too few for folds={folds}: every fold needs "
            "at least one identity; lower data.folds or add identities"
        )


def identity_folds(image_counts: Mapping[str, int], folds: int, seed: int) -> dict[str, int]:
    """Map each identity to one of ``folds`` disjoint folds (0..folds-1), seeded and stratified by image count.

    Fold sizes differ by at most one, and each fold takes one identity from every run of ``folds``
    identities of similar image count. The assignment depends only on the counts, ``folds`` and ``seed``.
    """
    if folds < 2:
        raise LossbenchError(f"folds={folds}: identity folds need folds >= 2")
    _check_folds(len(image_counts), folds, 0)
    rng = np.random.default_rng(seed)
    return _deal_folds(_by_count(image_counts, rng), folds, rng)


def split_identities(
    image_counts: Mapping[str, int],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    *,
    folds: int = 0,
    fold: int = 0,
) -> dict[str, str]:
    """Map each identity to train/val/test, disjointly, so each split sees a similar count distribution.

    Identities are sorted by image count (ties broken by a seeded shuffle), cut into consecutive
    strata about ``n / smallest split size`` long, shuffled within each stratum, and dealt out along a
    proportional split sequence.

    With ``folds`` = K >= 2 (cross-validation over identities) ``test_fraction`` is not used: the identities
    are dealt into K disjoint folds (:func:`identity_folds`, the same for every ``fold``), fold ``fold`` is
    test, ``val_fraction`` of all identities are drawn from the other folds (stratified as above), the rest
    train. Over fold = 0..K-1 the test splits partition the identities.
    """
    _check_folds(len(image_counts), folds, fold)
    sizes = {} if folds else split_sizes(len(image_counts), val_fraction, test_fraction)
    rng = np.random.default_rng(seed)
    order = _by_count(image_counts, rng)
    if not folds:
        return _deal(order, sizes, rng)
    fold_of = _deal_folds(order, folds, rng)
    rest = [name for name in order if fold_of[name] != fold]  # still sorted by count
    num_val = _share(val_fraction, len(order))
    if len(rest) - num_val < 1:
        raise LossbenchError(
            f"{len(order)} usable identities are too few for folds={folds}, val_ids={val_fraction}: after the "
            f"test fold ({len(order) - len(rest)}) and val ({num_val}) no identity is left to train; "
            "add identities, lower data.val_ids or raise data.folds"
        )
    test = {name: "test" for name in order if fold_of[name] == fold}
    return {**test, **_deal(rest, {"train": len(rest) - num_val, "val": num_val}, rng)}


def identity_rng(seed: int, identity: str) -> np.random.Generator:
    """A generator that depends only on the seed and the identity name (not on other identities)."""
    return np.random.default_rng([seed, zlib.crc32(identity.encode("utf-8"))])


def query_gallery_roles(
    domains: Sequence[str], queries_per_id: int, query_domain: str | None, rng: np.random.Generator
) -> list[str]:
    """Roles for one evaluation identity's images (given by their domains, in path order).

    With ``query_domain`` present among the images alongside another domain: up to ``queries_per_id``
    images of that domain are queries, the other domains are gallery, remaining query-domain images
    are unused. Otherwise a seeded choice of ``queries_per_id`` queries, always leaving one gallery image.
    """
    n = len(domains)
    in_domain = [i for i, d in enumerate(domains) if d == query_domain]
    if query_domain is not None and 0 < len(in_domain) < n:
        roles = ["unused" if d == query_domain else "gallery" for d in domains]
        pool = in_domain
        num_queries = min(queries_per_id, len(pool))
    else:
        roles = ["gallery"] * n
        pool = list(range(n))
        num_queries = min(queries_per_id, n - 1)
    for i in rng.choice(pool, size=num_queries, replace=False):
        roles[int(i)] = "query"
    return roles


def _describe(rows: pd.DataFrame, limit: int = 5) -> str:
    items = [f"{r.path} ({r.identity}, {r.split})" for r in rows.head(limit).itertuples()]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(items) + more


def check_no_leaks(manifest: pd.DataFrame) -> None:
    """Raise LossbenchError if an identity or an image hash appears in two of train/val/test."""
    labelled = manifest[manifest["split"].isin(SPLITS)]
    spread = labelled.groupby("identity")["split"].nunique()
    leaked = spread[spread > 1].index
    if len(leaked):
        rows = labelled[labelled["identity"].isin(leaked)].sort_values(["identity", "path"])
        raise LossbenchError(
            f"identity leak: {', '.join(map(repr, leaked[:5]))} appear in more than one of train/val/test: "
            f"{_describe(rows)}; each identity must be in exactly one split"
        )
    spread = labelled.groupby("sha1")["split"].nunique()
    leaked = spread[spread > 1].index
    if len(leaked):
        rows = labelled[labelled["sha1"].isin(leaked)].sort_values(["sha1", "path"])
        raise LossbenchError(
            f"image leak: identical image content in more than one of train/val/test: {_describe(rows)}; "
            "remove the duplicate files from the data folder"
        )
