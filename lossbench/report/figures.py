"""Report figures: score per loss, overlaid CMC / ROC curves, t-SNE of embeddings, retrieval examples.

Every figure has a fixed size and dpi (the retrieval grid a fixed size per cell), is rendered with the
Agg backend, written atomically (temporary PNG beside the target, then renamed) and closed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from lossbench.errors import LossbenchError  # noqa: E402

DPI = 120
BAR_SIZE = (7.0, 4.0)
CURVE_SIZE = (6.0, 4.5)
TSNE_SIZE = (7.0, 6.0)
CELL_SIZE = 1.6
_GRID_TOP, _GRID_BOTTOM = 0.3, 0.25
"""Inches per image cell of the retrieval grid, and its top (rank titles) and bottom (scores) margins."""

BAR_COLOR = "#9aa5b1"
HIGHLIGHT_COLOR = "#e4572e"
RIGHT_COLOR = (0, 180, 0)
WRONG_COLOR = (220, 0, 0)
QUERY_COLOR = (0, 90, 220)
"""Frame colours of the retrieval grid (RGB): a right match, a wrong match, the query."""

ROLE_MARKERS = {"query": "o", "gallery": "^"}


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` as PNG atomically at ``path`` and close it."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; a figure is an ordinary readable file
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        plt.close(fig)
    return target


def score_bar(scores: dict[str, float], path: str | os.PathLike, highlight: str | None = None,
              title: str = "Challenge score per loss") -> Path:
    """Bar chart of the challenge score (0–1000) per loss, in input order, ``highlight`` in colour."""
    if not scores:
        raise LossbenchError("score_bar: no scores given — evaluate at least one loss first")
    if highlight is not None and highlight not in scores:
        raise LossbenchError(f"score_bar: highlighted loss {highlight!r} has no score; "
                             f"choose one of {list(scores)}")
    names = list(scores)
    values = np.array([float(scores[n]) for n in names], dtype=float)
    fig, ax = plt.subplots(figsize=BAR_SIZE, dpi=DPI)
    colors = [HIGHLIGHT_COLOR if n == highlight else BAR_COLOR for n in names]
    bars = ax.bar(range(len(names)), np.nan_to_num(values), color=colors, edgecolor="none")
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    ax.set_ylim(0, max(top * 1.15, 1.0))
    for bar, value in zip(bars, values):
        label = f"{value:.1f}" if np.isfinite(value) else "n/a"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("challenge score (0–1000)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return save_figure(fig, path)


def overlay_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, xlabel: str,
                   ylabel: str, title: str, logx: bool = False) -> Path:
    """One line per loss (e.g. CMC: rank vs accuracy; ROC: FPR vs TPR); ``logx`` drops x ≤ 0."""
    if not curves:
        raise LossbenchError(f"overlay_curves ({title}): no curves given")
    fig, ax = plt.subplots(figsize=CURVE_SIZE, dpi=DPI)
    for name, (x, y) in curves.items():
        x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
        if x.shape != y.shape or x.size == 0:
            raise LossbenchError(f"overlay_curves ({title}): curve {name!r} needs x and y of one equal, "
                                 f"non-zero length, got {x.size} and {y.size}")
        if logx:
            keep = x > 0
            x, y = x[keep], y[keep]
        ax.plot(x, y, label=name, linewidth=1.5, marker="o" if x.size <= 20 else None, markersize=3)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if logx else "major")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def tsne_coordinates(embeddings: np.ndarray, labels: Sequence, seed: int = 0, max_identities: int = 20,
                     perplexity: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of the items of at most ``max_identities`` identities (a seeded choice).

    Rows are L2-normalised first (cosine geometry, as in retrieval). The perplexity is clipped to
    ``(n - 1) / 3`` for small n. It runs on one thread: a few hundred points take seconds, and OpenMP
    threads on a busy machine make it many times slower. Returns ``(coordinates n×2, selected rows)``.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    if emb.ndim != 2 or emb.shape[1] < 2 or labels.shape != (emb.shape[0],):
        raise LossbenchError(f"tsne: need embeddings items × dim (dim ≥ 2) and one label per item, got "
                             f"embeddings {emb.shape} and labels {labels.shape}")
    if max_identities < 1:
        raise LossbenchError(f"tsne: max_identities must be ≥ 1, got {max_identities}")
    identities = np.unique(labels)
    rng = np.random.default_rng(seed)
    if identities.size > max_identities:
        identities = np.sort(rng.choice(identities, size=max_identities, replace=False))
    rows = np.flatnonzero(np.isin(labels, identities))
    if rows.size < 3:
        raise LossbenchError(f"tsne: need at least 3 embeddings of the chosen identities, got {rows.size}")
    chosen = emb[rows]
    chosen = chosen / np.maximum(np.linalg.norm(chosen, axis=1, keepdims=True), 1e-12)
    tsne = TSNE(n_components=2, init="pca", random_state=seed,
                perplexity=float(min(perplexity, (rows.size - 1) / 3)))
    with threadpool_limits(limits=1):
        coords = tsne.fit_transform(chosen)
    return coords, rows


def tsne_plot(embeddings: np.ndarray, labels: Sequence, roles: Sequence[str], path: str | os.PathLike,
              seed: int = 0, max_identities: int = 20, perplexity: float = 30.0,
              title: str = "t-SNE of test embeddings") -> Path:
    """t-SNE scatter: colour = identity, marker = role (query ○, gallery △)."""
    roles = np.asarray(roles)
    unknown = sorted(set(roles.tolist()) - set(ROLE_MARKERS))
    if roles.shape != (len(labels),) or unknown:
        raise LossbenchError(f"tsne_plot: need one role per item from {list(ROLE_MARKERS)}, got "
                             f"{roles.shape[0]} roles for {len(labels)} items, unknown roles {unknown}")
    coords, rows = tsne_coordinates(embeddings, labels, seed=seed, max_identities=max_identities,
                                    perplexity=perplexity)
    chosen_labels, chosen_roles = np.asarray(labels)[rows], roles[rows]
    identities, codes = np.unique(chosen_labels, return_inverse=True)
    palette = (matplotlib.colormaps["tab20"] if identities.size <= 20
               else matplotlib.colormaps["turbo"].resampled(identities.size))
    colors = palette(codes)
    fig, ax = plt.subplots(figsize=TSNE_SIZE, dpi=DPI)
    for role, marker in ROLE_MARKERS.items():
        mask = chosen_roles == role
        ax.scatter(coords[mask, 0], coords[mask, 1], c=colors[mask], marker=marker, s=36,
                   edgecolors="black", linewidths=0.4)
    handles = [Line2D([], [], linestyle="", marker=m, markerfacecolor="#cccccc", markeredgecolor="black",
                      label=r) for r, m in ROLE_MARKERS.items()]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_title(f"{title} ({identities.size} identities, colour = identity)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)


def _as_rgb(image: np.ndarray, where: str) -> np.ndarray:
    """An HxWx3 uint8 image (HxW grey images are repeated over 3 channels)."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise LossbenchError(f"retrieval_grid: {where} must be an HxWx3 uint8 image, got shape "
                             f"{array.shape} dtype {array.dtype}")
    return array


def _framed(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """The image padded with a solid frame about 6% of its size (at least 2 pixels) wide."""
    width = max(2, round(0.06 * max(image.shape[:2])))
    return np.stack([np.pad(image[:, :, c], width, constant_values=color[c]) for c in range(3)], axis=2)


def retrieval_grid(queries: list[np.ndarray], results: list[list[np.ndarray]], correct: list[list[bool]],
                   scores: list[list[float]], path: str | os.PathLike,
                   titles: list[str] | None = None) -> Path:
    """One row per query: the query (blue frame), then its ranked gallery images framed green when
    they are the query's identity and red when not, each with its similarity score underneath."""
    n = len(queries)
    if n == 0:
        raise LossbenchError("retrieval_grid: no queries given")
    if not len(results) == len(correct) == len(scores) == n or (titles is not None and len(titles) != n):
        raise LossbenchError(f"retrieval_grid: need one results/correct/scores list (and title) per query; "
                             f"got {n} queries, {len(results)} results, {len(correct)} correct, "
                             f"{len(scores)} scores, {None if titles is None else len(titles)} titles")
    for i, (res, ok, sc) in enumerate(zip(results, correct, scores)):
        if not len(res) == len(ok) == len(sc):
            raise LossbenchError(f"retrieval_grid: query {i} has {len(res)} results, {len(ok)} correct "
                                 f"flags and {len(sc)} scores; they must match")
    k = max(len(res) for res in results)
    height = CELL_SIZE * n + _GRID_TOP + _GRID_BOTTOM
    fig, axes = plt.subplots(n, k + 1, figsize=(CELL_SIZE * (k + 1), height), dpi=DPI, squeeze=False)
    for axis in axes.ravel():
        axis.set_axis_off()
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(_framed(_as_rgb(queries[i], f"query {i}"), QUERY_COLOR), interpolation="nearest")
        ax.text(0.5, -0.04, titles[i] if titles else "query", transform=ax.transAxes, ha="center", va="top",
                fontsize=8)
        for j, (image, ok, score) in enumerate(zip(results[i], correct[i], scores[i])):
            ax = axes[i, j + 1]
            rgb = _as_rgb(image, f"result {j} of query {i}")
            ax.imshow(_framed(rgb, RIGHT_COLOR if ok else WRONG_COLOR), interpolation="nearest")
            ax.text(0.5, -0.04, f"{float(score):.3f}", transform=ax.transAxes, ha="center", va="top", fontsize=8)
            if i == 0:
                ax.set_title(f"#{j + 1}", fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - _GRID_TOP / height, bottom=_GRID_BOTTOM / height,
                        wspace=0.08, hspace=0.25)
    return save_figure(fig, path)
