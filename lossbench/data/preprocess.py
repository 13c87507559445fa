"""Raw image folder -> clean, leak-free, split uint8 image array + manifest, with a report of every drop."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from multiprocessing import Pool

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from lossbench.core.errors import LossbenchError
from lossbench.data.checks import check_manifest
from lossbench.data.scan import (
    CHALLENGE,
    CHALLENGE_ROLES,
    SKIP_REASONS,
    Candidate,
    Scan,
    UnusableImage,
    content_sha1,
    open_rgb,
    scan_folder,
)
from lossbench.data.split import (
    EVAL_ROLES,
    SPLITS,
    check_no_leaks,
    identity_rng,
    query_gallery_roles,
    split_identities,
)
from lossbench.data.store import scratch_array, staged_folder, write_images, write_manifest

AUTO_WORKERS_MIN_FILES = 256  # below this a process pool costs more than it saves
_EXAMPLES = 5


def resize_center_crop(img: Image.Image, size: int) -> np.ndarray:
    """Scale the shorter side to ``size`` and center-crop to size x size (Lanczos); uint8 H x W x 3."""
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    return np.asarray(img.resize((size, size), Image.Resampling.LANCZOS, box=box), dtype=np.uint8)


def decode_file(task: tuple[str, int, int]) -> tuple[np.ndarray | None, str, str, str]:
    """(path, size, max pixels) -> (resized pixels or None, sha1 of the full decoded pixels, skip reason or "",
    its cause)."""
    path, size, max_pixels = task
    try:
        img = open_rgb(path, max_pixels)
    except UnusableImage as exc:
        return None, "", exc.reason, exc.detail
    return resize_center_crop(img, size), content_sha1(np.asarray(img)), "", ""


@contextmanager
def _mapper(workers: int) -> Iterator[Callable[[Callable, list], Iterable]]:
    """An order-preserving map: the builtin one, or a process pool's imap (same results, same order)."""
    if workers <= 1:
        yield map
        return
    with Pool(workers) as pool:
        yield lambda fn, tasks: pool.imap(fn, tasks, chunksize=max(1, min(64, len(tasks) // (workers * 8))))


def _resolve_workers(workers: int | None, num_files: int) -> int:
    if workers is None:
        return min(os.cpu_count() or 1, 8) if num_files >= AUTO_WORKERS_MIN_FILES else 1
    if workers < 1:
        raise LossbenchError(f"workers={workers} must be >= 1 (or None for automatic)")
    return workers


def _decode_all(scan: Scan, scratch: np.ndarray, size: int, max_pixels: int, workers: int) -> pd.DataFrame:
    """Decode every candidate into ``scratch`` (same order); return the candidates with sha1/reason/detail."""
    tasks = [(str(scan.root / c.path), size, max_pixels) for c in scan.candidates]
    hashes, reasons, details = [], [], []
    with _mapper(workers) as imap:
        results = imap(decode_file, tasks)
        for i, (pixels, sha1, reason, detail) in enumerate(
            tqdm(results, total=len(tasks), desc="decode", unit="img", disable=None)
        ):
            if pixels is not None:
                scratch[i] = pixels
            hashes.append(sha1)
            reasons.append(reason)
            details.append(detail)
    columns = [f.name for f in fields(Candidate)]
    table = pd.DataFrame([asdict(c) for c in scan.candidates], columns=columns)
    return table.assign(sha1=hashes, reason=reasons, detail=details, source=np.arange(len(table)))


def _skipped(scan: Scan, table: pd.DataFrame) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Skipped files by reason (every reason listed), and the cause of each skipped file that has one."""
    bad = table[table["reason"] != ""]
    entries = [(r.path, r.reason, r.detail) for r in bad.itertuples()]
    entries += [(s.path, s.reason, s.detail) for s in scan.skipped]
    skipped: dict[str, list[str]] = {reason: [] for reason in SKIP_REASONS}
    for path, reason, _ in sorted(entries):
        skipped[reason].append(path)
    return skipped, {path: detail for path, _, detail in sorted(entries) if detail}


def _refuse_links(scan: Scan) -> None:
    """Folders reached through a link are not tracked by DVC (its hash of the data folder skips them)."""
    if scan.links:
        listed = ", ".join(f"{link.path} {link.detail}" for link in scan.links[:_EXAMPLES])
        raise LossbenchError(
            f"{scan.root} holds {len(scan.links)} link(s) to folders: {listed}. DVC does not track what they hold, "
            "so its cache would go stale; replace each link with a real folder (e.g. `cp -rL` the target in, or "
            "`dvc add` the target and point data.original to it)"
        )


def _examples(items: list[str]) -> str:
    more = f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else ""
    return ", ".join(items[:_EXAMPLES]) + more


def _warn(count: int, message: str, items: list[str]) -> None:
    if count:
        warnings.warn(f"{message}: {_examples(items)} (full list in the data report)", UserWarning, stacklevel=4)


def _deduplicate(images: pd.DataFrame) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """Keep the first of identical images within an identity; drop every copy shared by identities."""
    drop: list[int] = []
    within: list[dict] = []
    cross: list[dict] = []
    repeated = images[images["sha1"].duplicated(keep=False)]
    for sha1, group in repeated.groupby("sha1", sort=True):
        paths = sorted(group["path"])
        identities = sorted(group["identity"].unique())
        if len(identities) > 1:
            cross.append({"sha1": sha1, "identities": identities, "paths": paths})
            drop.extend(group.index)
        else:
            within.append({"identity": identities[0], "kept": paths[0], "removed": paths[1:]})
            drop.extend(group.index[group["path"] != paths[0]])
    within.sort(key=lambda d: d["kept"])
    cross.sort(key=lambda d: d["paths"][0])
    return images.drop(index=drop), within, cross


def _train_challenge_duplicates(labelled: pd.DataFrame, challenge: pd.DataFrame) -> list[dict]:
    shared = sorted(set(labelled["sha1"]) & set(challenge["sha1"]))
    return [
        {
            "sha1": sha1,
            "train": sorted(labelled.loc[labelled["sha1"] == sha1, "path"]),
            "challenge": sorted(challenge.loc[challenge["sha1"] == sha1, "path"]),
        }
        for sha1 in shared
    ]


def _drop_small_identities(images: pd.DataFrame, scan: Scan, min_images: int) -> tuple[pd.DataFrame, list[dict]]:
    counts = images.groupby("identity").size()
    with_files = {c.identity for c in scan.candidates}
    prefix = "train/" if scan.layout == CHALLENGE else ""
    unread = {s.path: s.detail for s in scan.folders if s.reason == "unreadable"}
    dropped = []
    for identity in scan.identities:
        count = int(counts.get(identity, 0))
        if f"{prefix}{identity}/" in unread:
            dropped.append(
                {"identity": identity, "reason": "unreadable", "images": 0, "detail": unread[f"{prefix}{identity}/"]}
            )
        elif identity not in with_files:
            dropped.append({"identity": identity, "reason": "empty", "images": 0})
        elif count < min_images:
            dropped.append({"identity": identity, "reason": "too_few_images", "images": count})
    gone = {d["identity"] for d in dropped}
    return images[~images["identity"].isin(gone)], dropped


def _assign_roles(
    images: pd.DataFrame, split_of: dict[str, str], queries_per_id: int, query_domain: str | None, seed: int
) -> pd.DataFrame:
    images = images.sort_values("path").assign(split=lambda t: t["identity"].map(split_of), role="train")
    for identity, group in images[images["split"] != "train"].groupby("identity", sort=True):
        roles = query_gallery_roles(list(group["domain"]), queries_per_id, query_domain, identity_rng(seed, identity))
        images.loc[group.index, "role"] = roles
    return images


def _clean(
    usable: pd.DataFrame, scan: Scan, min_images: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[dict]], list[dict]]:
    """Remove duplicates and too-small identities: (labelled, challenge, duplicates, dropped identities)."""
    challenge = usable[usable["split"] == CHALLENGE]
    labelled = usable[usable["split"] != CHALLENGE]
    deduplicated, within, cross = _deduplicate(labelled)
    duplicates = {
        "within_identity": within,
        "cross_identity": cross,
        "train_challenge": _train_challenge_duplicates(labelled, challenge),
    }
    kept, dropped = _drop_small_identities(deduplicated, scan, min_images)
    return kept, challenge, duplicates, dropped


def _warn_about(
    scan: Scan, skipped: dict[str, list[str]], duplicates: dict[str, list[dict]], dropped: list[dict], min_images: int
) -> None:
    """One warning per kind of unused input, naming a few examples."""
    for reason, paths in skipped.items():
        _warn(len(paths), f"{scan.root}: skipped {len(paths)} {reason} file(s)", paths)
    for reason in sorted({f.reason for f in scan.folders}):
        folders = [f.path for f in scan.folders if f.reason == reason]
        _warn(len(folders), f"{scan.root}: did not enter {len(folders)} {reason} folder(s)", folders)
    _warn(
        len(scan.ignored),
        f"{scan.root}: ignored {len(scan.ignored)} entries outside the layout",
        [d["path"] for d in scan.ignored],
    )
    within, cross, shared = duplicates["within_identity"], duplicates["cross_identity"], duplicates["train_challenge"]
    _warn(
        len(within),
        f"removed {sum(len(d['removed']) for d in within)} exact duplicate(s) within identities",
        [f"{p} (copy of {d['kept']})" for d in within for p in d["removed"]],
    )
    _warn(
        len(cross),
        f"dropped all copies of {len(cross)} image(s) found under several identities (label noise)",
        [" = ".join(d["paths"]) for d in cross],
    )
    _warn(
        len(shared),
        f"{len(shared)} train image(s) also in the challenge test set",
        [" = ".join(d["train"] + d["challenge"]) for d in shared],
    )
    _warn(
        len(dropped),
        f"dropped {len(dropped)} identities with fewer than {min_images} usable images",
        [f"{d['identity']} ({d['reason']}, {d['images']})" for d in dropped],
    )


def _warn_mixed(mixed: list[dict], query_domain: str | None, policy: str) -> None:
    action = (
        "moved to train (data.query_domain_missing: train)"
        if policy == "train"
        else "their queries are drawn at random, mixing two protocols (data.query_domain_missing: train leaves "
        "them out of val/test)"
    )
    _warn(
        len(mixed),
        f"{len(mixed)} val/test identities lack query_domain={query_domain!r} or any other domain: {action}",
        [f"{d['identity']} ({d['split']}, lacks {d['lacks']})" for d in mixed],
    )


def _without_query_domain(labelled: pd.DataFrame, split_of: dict[str, str], query_domain: str | None) -> list[dict]:
    """val/test identities whose queries cannot come from ``query_domain``: they lack it or have nothing else."""
    if query_domain is None:
        return []
    found = []
    for identity, group in labelled.groupby("identity", sort=True):
        in_domain = group["domain"] == query_domain
        if split_of[identity] != "train" and not (in_domain.any() and not in_domain.all()):
            lacks = "query_domain" if not in_domain.any() else "other_domains"
            found.append({"identity": identity, "split": split_of[identity], "lacks": lacks})
    return found


QUERY_DOMAIN_MISSING = ("random", "train")
"""What val/test identities without both ``query_domain`` and another domain get: random queries (two protocols
mixed, reported), or a place in train (left out of val/test)."""


def _build_manifest(
    labelled: pd.DataFrame,
    challenge: pd.DataFrame,
    scan: Scan,
    val_ids: float,
    test_ids: float,
    queries_per_id: int,
    query_domain: str | None,
    query_domain_missing: str,
    seed: int,
    folds: int,
    fold: int,
) -> tuple[pd.DataFrame, list[dict]]:
    """Split identities, assign roles and labels: one row per output image, sorted by path; and the val/test
    identities without the query domain (moved to train when ``query_domain_missing`` is "train")."""
    domains = sorted(set(labelled["domain"]) - {""})
    if query_domain is not None and query_domain not in domains:
        raise LossbenchError(
            f"query_domain={query_domain!r} is not a domain of {scan.root} (domains found: {domains}); "
            "domains are sub-folders <identity>/<domain>/<image>, or set query_domain to null"
        )
    if query_domain_missing not in QUERY_DOMAIN_MISSING:
        raise LossbenchError(f"query_domain_missing={query_domain_missing!r} must be one of {QUERY_DOMAIN_MISSING}")
    counts = labelled.groupby("identity").size().to_dict()
    split_of = split_identities(counts, val_ids, test_ids, seed, folds=folds, fold=fold)
    mixed = _without_query_domain(labelled, split_of, query_domain)
    if query_domain_missing == "train":
        split_of.update({d["identity"]: "train" for d in mixed})
    labelled = _assign_roles(labelled, split_of, queries_per_id, query_domain, seed)
    label_of = {name: i for i, name in enumerate(sorted(split_of))}
    parts = [labelled.assign(label=labelled["identity"].map(label_of)), challenge.assign(label=-1)]
    manifest = pd.concat([part for part in parts if len(part)]).sort_values("path").reset_index(drop=True)
    return manifest.assign(row=np.arange(len(manifest)), label=manifest["label"].astype("int64")), mixed


def _validate_args(image_size: int, queries_per_id: int, min_images_per_id: int, max_image_pixels: int) -> None:
    named = {
        "image_size": image_size,
        "queries_per_id": queries_per_id,
        "min_images_per_id": min_images_per_id,
        "max_image_pixels": max_image_pixels,
    }
    for name, value in named.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise LossbenchError(f"{name}={value!r} must be a positive integer")


def _counts(series: pd.Series, keys: Iterable[str]) -> dict[str, int]:
    found = series.value_counts()
    return {key: int(found.get(key, 0)) for key in keys}


def _report(
    scan: Scan,
    manifest: pd.DataFrame,
    skipped: dict[str, list[str]],
    causes: dict[str, str],
    dropped: list[dict],
    duplicates: dict[str, list[dict]],
    settings: dict,
) -> dict:
    labelled = manifest[manifest["split"].isin(SPLITS)]
    roles_of = {"train": ("train",), "val": EVAL_ROLES, "test": EVAL_ROLES, CHALLENGE: CHALLENGE_ROLES}
    ids = {s: int(labelled.loc[labelled["split"] == s, "identity"].nunique()) for s in SPLITS}
    num_skipped = sum(len(paths) for paths in skipped.values())
    removed = {
        "within_identity": sum(len(d["removed"]) for d in duplicates["within_identity"]),
        "cross_identity": sum(len(d["paths"]) for d in duplicates["cross_identity"]),
    }
    summary = (
        f"{len(manifest)} images of {sum(ids.values())} identities "
        f"(train/val/test identities {ids['train']}/{ids['val']}/{ids['test']}"
        + (f", test = identity fold {settings['fold']} (folds 0..{settings['folds'] - 1})" if settings["folds"] else "")
        + (f", {int((manifest['split'] == CHALLENGE).sum())} challenge images" if scan.layout == CHALLENGE else "")
        + f"); skipped {num_skipped} files and {len(scan.folders)} directories, removed {sum(removed.values())} "
        f"duplicates, dropped {len(dropped)} identities, ignored {len(scan.ignored)} entries"
    )
    return {
        "layout": scan.layout,
        "summary": summary,
        **settings,
        "images": len(manifest),
        "classes": int(labelled["identity"].nunique()),
        "identities": ids,
        "images_per_split": _counts(manifest["split"], tuple(roles_of)),
        "images_per_role": {s: _counts(manifest.loc[manifest["split"] == s, "role"], r) for s, r in roles_of.items()},
        "domains": {d: int(n) for d, n in sorted(labelled["domain"].value_counts().items()) if d},
        "skipped_total": num_skipped,
        "skipped_counts": {reason: len(paths) for reason, paths in skipped.items()},
        "skipped": skipped,
        "skip_causes": causes,
        "skipped_folders": [asdict(f) for f in scan.folders],
        "ignored": scan.ignored,
        "dropped_identities": dropped,
        "duplicates_removed": removed,
        "duplicates": duplicates,
    }


def preprocess_dataset(
    original: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    image_size: int,
    val_ids: float,
    test_ids: float,
    queries_per_id: int,
    query_domain: str | None,
    query_domain_missing: str,
    min_images_per_id: int,
    max_image_pixels: int,
    seed: int,
    folds: int = 0,
    fold: int = 0,
    workers: int | None = None,
) -> dict:
    """Decode, clean, split and write ``original`` to out_dir/ (images.npy, manifest.csv, digest.json, replaced as
    one unit); return the report.

    Every file that is not used is reported (skipped files by reason with their cause, folders not entered,
    dropped identities, duplicates) and summarised with a warning; links to folders, misread layouts and splits
    that later stages cannot use are errors. ``workers=None`` uses a process pool for large folders; the result
    does not depend on the number of workers. ``folds`` = K >= 2 takes the test identities from fold ``fold``
    of K disjoint identity folds instead of ``test_ids`` (see :func:`split_identities`); 0 = one split.
    """
    _validate_args(image_size, queries_per_id, min_images_per_id, max_image_pixels)
    scan = scan_folder(original)
    _refuse_links(scan)
    shape = (len(scan.candidates), image_size, image_size, 3)
    with staged_folder(out_dir) as staging:
        scratch, scratch_path = scratch_array(staging, shape)
        try:
            workers = _resolve_workers(workers, len(scan.candidates))
            table = _decode_all(scan, scratch, image_size, max_image_pixels, workers)
            skipped, causes = _skipped(scan, table)
            labelled, challenge, duplicates, dropped = _clean(table[table["reason"] == ""], scan, min_images_per_id)
            _warn_about(scan, skipped, duplicates, dropped, min_images_per_id)
            if labelled.empty:
                raise LossbenchError(
                    f"no identity in {scan.root} has at least min_images_per_id={min_images_per_id} usable images; "
                    "add images or lower min_images_per_id"
                )
            if scan.layout == CHALLENGE and challenge.empty:
                raise LossbenchError(
                    f"{scan.root} has the challenge layout but test/query/ and test/gallery/ hold no usable image "
                    "(empty, or every file skipped: see the data report): add the challenge images, or remove "
                    "test/ to use train/ as an image-folder data set"
                )
            manifest, mixed = _build_manifest(
                labelled,
                challenge,
                scan,
                val_ids,
                test_ids,
                queries_per_id,
                query_domain,
                query_domain_missing,
                seed,
                folds,
                fold,
            )
            _warn_mixed(mixed, query_domain, query_domain_missing)
            check_no_leaks(manifest)
            notes = check_manifest(manifest)
            for note in notes:
                warnings.warn(note, UserWarning, stacklevel=2)
            write_images(staging, scratch, manifest["source"].to_numpy())
        finally:
            del scratch
            scratch_path.unlink(missing_ok=True)
        digest = write_manifest(staging, manifest)

    settings = {
        "image_size": image_size,
        "seed": seed,
        "val_ids": val_ids,
        "test_ids": test_ids,
        "folds": folds,
        "fold": fold,
        "queries_per_id": queries_per_id,
        "query_domain": query_domain,
        "query_domain_missing": query_domain_missing,
        "min_images_per_id": min_images_per_id,
        "max_image_pixels": max_image_pixels,
    }
    report = _report(scan, manifest, skipped, causes, dropped, duplicates, settings)
    without = {"policy": query_domain_missing, "identities": mixed}
    return {**report, "without_query_domain": without, "warnings": notes, "digest": digest}
