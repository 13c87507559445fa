"""Checks of a split manifest that would otherwise fail (or mislead) only in a later stage: each names the problem
and the fix. Errors stop preprocess; warnings go to the data report."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath

import pandas as pd

from lossbench.core.errors import LossbenchError

MINIMUM_IDENTITIES = {
    "train": (2, "a training batch needs at least 2 (positives and negatives)", "lower data.val_ids / data.test_ids"),
    "test": (
        2,
        "evaluation needs at least 2 (verification pairs each query with other identities)",
        "raise data.test_ids",
    ),
}
"""Split -> (fewest identities later stages can use, why, how to get more besides adding identities)."""
MIN_VAL_IDS = 2
"""With one val identity every val metric is 1.0 at every epoch: the val split cannot rank epochs."""


def base_names(paths: Sequence[str], role: str) -> list[str]:
    """File names of ``paths`` (posix, relative to the data root); two files with one name is an error."""
    names = [PurePosixPath(p).name for p in paths]
    seen: dict[str, str] = {}
    for name, path in zip(names, paths):
        if name in seen:
            raise LossbenchError(
                f"two challenge {role} files share the name {name!r} ({seen[name]} and {path}): a submission is "
                f"keyed by file name, so rename one of them in the data folder and run `dvc repro`"
            )
        seen[name] = path
    return names


def _identities(manifest: pd.DataFrame, split: str) -> int:
    return int(manifest.loc[manifest["split"] == split, "identity"].nunique())


def _count(n: int) -> str:
    return f"{n} identit{'y' if n == 1 else 'ies'}"


def _split_sizes(manifest: pd.DataFrame) -> str | None:
    for split, (minimum, why, fix) in MINIMUM_IDENTITIES.items():
        n = _identities(manifest, split)
        if n < minimum:
            return f"the {split} split has {_count(n)}: {why}; add identities or {fix}"
    return None


def _challenge_sets(manifest: pd.DataFrame) -> str | None:
    challenge = manifest[manifest["split"] == "challenge"]
    if challenge.empty:
        return None
    for role in ("query", "gallery"):
        paths = sorted(challenge.loc[challenge["role"] == role, "path"])
        if not paths:
            return (
                f"the challenge test set has no usable {role} image (test/{role}/ is empty or every file in it "
                "was skipped, see the data report): add images to it"
            )
        base_names(paths, role)
    return None


ERRORS: tuple[Callable[[pd.DataFrame], str | None], ...] = (_split_sizes, _challenge_sets)
"""Manifest checks whose failure stops preprocess."""


def val_ranking_problem(manifest: pd.DataFrame) -> str | None:
    """Why the val split cannot rank epochs (model selection is then meaningless), or None."""
    n = _identities(manifest, "val")
    if n == 0 or n >= MIN_VAL_IDS:
        return None
    return (
        f"the val split has {_count(n)}: its top-k and mAP are 1.0 at every epoch, so it cannot rank epochs "
        f"(model selection keeps the last epoch); at least {MIN_VAL_IDS} val identities are needed: raise "
        "data.val_ids or add identities"
    )


WARNINGS: tuple[Callable[[pd.DataFrame], str | None], ...] = (val_ranking_problem,)
"""Manifest checks that only warn (and are recorded in the data report)."""


def check_manifest(manifest: pd.DataFrame) -> list[str]:
    """Raise LossbenchError for the first failed check of :data:`ERRORS`; return the warnings' messages."""
    for check in ERRORS:
        problem = check(manifest)
        if problem:
            raise LossbenchError(problem)
    return [text for check in WARNINGS if (text := check(manifest))]


def check_batches_fit(manifest: pd.DataFrame, ids_per_batch: Iterable[tuple[str, int]]) -> None:
    """Each (loss, train.ids_per_batch) must fit the train split's identities (call before training starts)."""
    n = _identities(manifest, "train")
    too_big = [f"{name} ({p})" for name, p in ids_per_batch if p > n]
    if too_big:
        raise LossbenchError(
            f"train.ids_per_batch exceeds the {n} train identities for {', '.join(too_big)}: lower ids_per_batch "
            f"to at most {n} (params.yaml train or losses.<loss>.train) or add identities"
        )
