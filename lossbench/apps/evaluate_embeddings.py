"""``lossbench evaluate-embeddings``: metrics with 95% identity-bootstrap intervals of saved embeddings.

    lossbench evaluate-embeddings --query Q.npy --query-labels QL.npy [--gallery G.npy --gallery-labels GL.npy]
        --out metrics.json [--resamples 2000] [--seed 0] [--topk 1 5 10] [--far 1e-3 1e-4]

Without a gallery every item is a query against all the others (all-vs-all; labels seen once are
distractors). Embeddings are L2-normalised by the command (the JSON says whether they already were).
Labels are any 1-D ``.npy`` array (ints or strings). Intervals are the 2.5 and 97.5 percentiles of the
identity-bootstrap replicates (:mod:`lossbench.metrics.streaming`). A bad input prints one line
``lossbench evaluate-embeddings: error: <file>: <what> (<fix>)`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lossbench.core.errors import LossbenchError
from lossbench.metrics.streaming import evaluate_streaming

PROG = "lossbench evaluate-embeddings"


class InputError(Exception):
    """A bad input file: ``file: what (fix)``."""

    def __init__(self, path: str, what: str, fix: str):
        super().__init__(f"{path}: {what} ({fix})")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--query", required=True, metavar="Q.npy", help="query embeddings (items × dim)")
    parser.add_argument("--query-labels", required=True, metavar="QL.npy", help="one label per query")
    parser.add_argument("--gallery", metavar="G.npy", help="gallery embeddings (default: all-vs-all over the queries)")
    parser.add_argument("--gallery-labels", metavar="GL.npy", help="one label per gallery item")
    parser.add_argument("--out", required=True, metavar="metrics.json", help="where to write the metrics")
    parser.add_argument("--resamples", type=int, default=2000, help="identity-bootstrap replicates (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default: 0)")
    parser.add_argument("--topk", type=int, nargs="+", default=[1, 5, 10], help="top-k accuracies (default: 1 5 10)")
    parser.add_argument(
        "--far", type=float, nargs="+", default=[1e-3, 1e-4], help="FARs of TAR@FAR (default: 1e-3 1e-4)"
    )


def _load(path: str) -> np.ndarray:
    if not Path(path).is_file():
        raise InputError(path, "no such file", "check the path")
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise InputError(path, "not a .npy array", "save it with numpy.save")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError(path, "holds Python objects", "save labels as an int or string array") from None
        raise InputError(path, f"malformed .npy array: {exc}", "save it again with numpy.save") from None
    except (OSError, EOFError) as exc:
        raise InputError(path, f"malformed .npy array: {exc}", "save it again with numpy.save") from None


def _embeddings(path: str) -> np.ndarray:
    x = _load(path)
    if x.ndim != 2 or 0 in x.shape:
        raise InputError(path, f"embeddings must be a non-empty 2-D array, got shape {x.shape}", "items × dim")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(path, f"embeddings must be real numbers, got dtype {x.dtype}", "save a float array")
    if not np.isfinite(x).all():
        raise InputError(path, "contains NaN or inf values", "re-embed, or drop those rows and their labels")
    return x


def _labels(path: str, embeddings: np.ndarray, embeddings_path: str) -> np.ndarray:
    labels = _load(path)
    if labels.ndim != 1:
        raise InputError(path, f"labels must be 1-D, got shape {labels.shape}", "one label per embedding")
    if labels.size != len(embeddings):
        raise InputError(
            path, f"{labels.size} labels for {len(embeddings)} embeddings in {embeddings_path}", "one label per row"
        )
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise InputError(path, "contains NaN or inf labels", "label every item")
    return labels


def _unit_norm(*arrays: np.ndarray) -> bool:
    return all(np.allclose(np.linalg.norm(a.astype(np.float64), axis=1), 1.0, atol=1e-4) for a in arrays)


def _check_options(args: argparse.Namespace) -> None:
    if any(k < 1 for k in args.topk):
        raise InputError("--topk", f"ranks must be positive, got {args.topk}", "e.g. --topk 1 5 10")
    if any(not 0.0 < f < 1.0 for f in args.far):
        raise InputError("--far", f"rates must be in (0, 1), got {args.far}", "e.g. --far 1e-3 1e-4")
    if args.resamples < 2:
        raise InputError(
            "--resamples", f"need at least 2 replicates for an interval, got {args.resamples}", "e.g. 2000"
        )


def evaluate(args: argparse.Namespace) -> dict:
    """The JSON document of one evaluation."""
    _check_options(args)
    query = _embeddings(args.query)
    query_labels = _labels(args.query_labels, query, args.query)
    if (args.gallery is None) != (args.gallery_labels is None):
        given = args.gallery or args.gallery_labels
        raise InputError(given, "--gallery and --gallery-labels go together", "pass both, or neither for all-vs-all")
    gallery = gallery_labels = None
    if args.gallery is not None:
        gallery = _embeddings(args.gallery)
        gallery_labels = _labels(args.gallery_labels, gallery, args.gallery)
        if gallery.shape[1] != query.shape[1]:
            raise InputError(
                args.gallery,
                f"dimension {gallery.shape[1]} differs from {query.shape[1]} in {args.query}",
                "embed both with the same model",
            )
    try:
        result = evaluate_streaming(
            query,
            query_labels,
            gallery,
            gallery_labels,
            topk=args.topk,
            far=args.far,
            resamples=args.resamples,
            seed=args.seed,
        )
    except LossbenchError as exc:
        raise InputError(args.query_labels, str(exc), "check the labels of queries and gallery") from None
    metrics = {}
    for key, value in result.metrics.items():
        if key in result.replicates:
            low, high = np.nanpercentile(result.replicates[key], [2.5, 97.5])
            metrics[key] = {"value": value, "low": float(low), "high": float(high)}
    counts = {key: value for key, value in result.metrics.items() if key not in result.replicates}
    return {
        "protocol": "all-vs-all" if gallery is None else "query-gallery",
        "queries": len(query),
        "gallery": len(query) if gallery is None else len(gallery),
        "identities": int(np.unique(query_labels).size),
        "interval": "95% percentile interval of the identity-bootstrap replicates",
        "resamples": args.resamples,
        "seed": args.seed,
        "input_unit_norm": _unit_norm(query) if gallery is None else _unit_norm(query, gallery),
        "metrics": metrics,
        "counts": counts,
        "error_bounds": result.bounds,
    }


def run(args: argparse.Namespace) -> int:
    """Evaluate and write ``args.out``; one error line and status 2 on bad input."""
    try:
        document = evaluate(args)
        try:
            Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
        except OSError as exc:
            raise InputError(args.out, f"cannot write: {exc.strerror}", "choose a writable path") from None
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    m = document["metrics"]
    print(
        f"{document['protocol']}: top1={m['top1']['value']:.4f} [{m['top1']['low']:.4f}, {m['top1']['high']:.4f}] "
        f"ROC-AUC={m['roc_auc']['value']:.4f} -> {args.out}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    configure(parser)
    return run(parser.parse_args(argv))
