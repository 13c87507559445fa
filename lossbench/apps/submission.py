"""Submission files: every query image → its top-10 gallery file names, ranked by exact search.

The target depends on the processed data (:data:`TARGETS`):

- ``challenge`` — the unlabelled ``<root>/test/query`` and ``<root>/test/gallery`` folders of the challenge
  layout; names are the files' base names, exactly as in those folders;
- ``test`` — the labelled test split (image-folder layout), so the format is exercised on every run; names
  are manifest paths (base names repeat across identity folders) and the submission is scored with the
  known labels (600·top1 + 300·top5 + 100·top10).

Ranking is exact over the whole gallery, whatever ``index.factory`` the pipeline's own index uses, so no
gallery image is ever missed: :func:`lossbench.metrics.ranking.rank_gallery`, the ranking ``evaluate``
scores, with equal similarities ordered by gallery position (FAISS leaves their order unspecified).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench.core.errors import LossbenchError
from lossbench.data.checks import base_names
from lossbench.embedding.sets import SETS, load_embeddings
from lossbench.metrics.ranking import challenge_score, rank_gallery

K = 10
"""Gallery names per query in a submission."""

Naming = Callable[[Sequence[str], str], list[str]]


def manifest_paths(paths: Sequence[str], role: str) -> list[str]:
    """The manifest paths themselves (unique by construction; base names repeat across identities)."""
    return [str(p) for p in paths]


@dataclass(frozen=True)
class Target:
    """Which embedding sets a submission ranks, how its files are named, and whether it can be scored."""

    query_set: str
    gallery_set: str
    naming: Naming
    labelled: bool


TARGETS: dict[str, Target] = {
    "challenge": Target("challenge_query", "challenge_gallery", base_names, labelled=False),
    "test": Target("query", "gallery", manifest_paths, labelled=True),
}


def choose_target(manifest: pd.DataFrame) -> str:
    """``challenge`` when the processed data holds challenge rows, else ``test``."""
    return "challenge" if (manifest["split"] == "challenge").any() else "test"


def build_submission(query_names: Sequence[str], gallery_names: Sequence[str], ids: np.ndarray) -> dict[str, list[str]]:
    """``{query name: [gallery names, best first]}`` from ranked gallery ids (one row per query)."""
    gallery = np.asarray(gallery_names, dtype=object)
    return {str(q): [str(name) for name in gallery[row]] for q, row in zip(query_names, np.asarray(ids))}


def validate_submission(
    submission: Mapping[str, Sequence[str]], query_names: Sequence[str], gallery_names: Sequence[str], k: int = K
) -> None:
    """Every query present once, each with exactly ``min(k, gallery size)`` distinct gallery names."""
    expected = min(k, len(gallery_names))
    missing = sorted(set(query_names) - set(submission))
    extra = sorted(set(submission) - set(query_names))
    if missing or extra:
        raise LossbenchError(
            f"submission does not match the query folder: missing {missing[:5]} ({len(missing)}), "
            f"unknown {extra[:5]} ({len(extra)})"
        )
    gallery = set(gallery_names)
    for query, names in submission.items():
        if len(names) != expected or len(set(names)) != expected:
            raise LossbenchError(
                f"submission entry {query!r} has {len(names)} names ({len(set(names))} distinct); "
                f"expected {expected} distinct gallery names"
            )
        unknown = [n for n in names if n not in gallery]
        if unknown:
            raise LossbenchError(f"submission entry {query!r} names files that are not in the gallery: {unknown[:5]}")


def score_ranking(ids: np.ndarray, query_labels: Sequence, gallery_labels: Sequence) -> dict[str, float]:
    """top-1/5/10 accuracy and challenge score of ranked gallery ids (a query without a match is a miss)."""
    ids = np.asarray(ids)
    hits = np.asarray(gallery_labels)[ids] == np.asarray(query_labels)[:, None]
    result = {f"top{k}": float(hits[:, :k].any(axis=1).mean()) for k in (1, 5, 10)}
    return {**result, "score": challenge_score(result["top1"], result["top5"], result["top10"])}


def lost_images(
    skipped: Mapping[str, Sequence[str]], prefixes: tuple[str, ...] = ("test/query/", "test/gallery/")
) -> list[str]:
    """Files of the challenge test folders that preprocess could not use (hidden files aside)."""
    return sorted(p for reason, paths in skipped.items() if reason != "hidden" for p in paths if p.startswith(prefixes))


@dataclass
class Submission:
    """A validated submission and what it was built from."""

    target: str
    entries: dict[str, list[str]]
    num_gallery: int
    k: int
    metrics: dict[str, float] | None = None

    def summary(self) -> str:
        text = f"{self.target}: {len(self.entries)} queries x top-{self.k} of {self.num_gallery} gallery images"
        if self.metrics:
            m = self.metrics
            text += f"; score={m['score']:.1f} (top1={m['top1']:.3f} top5={m['top5']:.3f} top10={m['top10']:.3f})"
        return text


def _load_set(manifest: pd.DataFrame, embeddings_dir: Path, name: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Embeddings of set ``name`` and their manifest rows; every manifest row of the set must be embedded."""
    split, role = SETS[name]
    expected = manifest[(manifest["split"] == split) & (manifest["role"] == role)]
    if expected.empty:
        raise LossbenchError(
            f"the processed data has no {split} {role} images: the challenge layout needs files in "
            f"<root>/test/{role}/; add them and run `dvc repro`"
        )
    vectors, rows = load_embeddings(embeddings_dir, name)
    if len(rows) != len(vectors) or set(rows.tolist()) != set(expected["row"].tolist()):
        raise LossbenchError(
            f"{embeddings_dir / name}.npy does not cover the {len(expected)} {split} {role} images "
            f"of the processed data: run `dvc repro embed@{embeddings_dir.parent.name}`"
        )
    return np.asarray(vectors), manifest.set_index("row").loc[rows]


def make_submission(manifest: pd.DataFrame, embeddings_dir: str | Path, k: int = K) -> Submission:
    """Rank every query of the target (see :func:`choose_target`) against its whole gallery and validate."""
    target_name = choose_target(manifest)
    target = TARGETS[target_name]
    embeddings_dir = Path(embeddings_dir)
    query, query_meta = _load_set(manifest, embeddings_dir, target.query_set)
    gallery, gallery_meta = _load_set(manifest, embeddings_dir, target.gallery_set)
    if len(gallery) < k:
        warnings.warn(
            f"the {target_name} gallery has only {len(gallery)} images, fewer than {k}: every query lists "
            f"all {len(gallery)}",
            UserWarning,
            stacklevel=2,
        )
    query_names = target.naming(list(query_meta["path"]), "query")
    gallery_names = target.naming(list(gallery_meta["path"]), "gallery")
    _, ids = rank_gallery(query, gallery, k)
    entries = build_submission(query_names, gallery_names, ids)
    validate_submission(entries, query_names, gallery_names, k)
    metrics = None
    if target.labelled:
        metrics = score_ranking(ids, query_meta["label"].to_numpy(), gallery_meta["label"].to_numpy())
    return Submission(target_name, entries, len(gallery), min(k, len(gallery)), metrics)
