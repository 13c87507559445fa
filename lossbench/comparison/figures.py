"""Report figures: a metric per loss with confidence intervals, CMC / ROC curves over seeds, t-SNE of
embeddings, retrieval examples.

Every figure has a fixed size and dpi (the retrieval grid a fixed size per cell), is rendered with the
Agg backend, written atomically (temporary PNG beside the target, then renamed) and closed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from lossbench.comparison.tables import Row  # noqa: E402
from lossbench.core.errors import LossbenchError  # noqa: E402
from lossbench.metrics.catalogue import metric_info  # noqa: E402

DPI = 120
BAR_SIZE = (7.0, 4.0)
CURVE_SIZE = (6.0, 4.5)
TSNE_SIZE = (7.0, 6.0)
CELL_SIZE = 1.6
_GRID_TOP, _GRID_BOTTOM = 0.3, 0.25
"""Inches per image cell of the retrieval grid, and its top (rank titles) and bottom (scores) margins."""

BAR_COLOR = "#9aa5b1"
BEST_COLOR = "#2e86ab"
"""Bars of the best loss and of the losses tied with it; the others are :data:`BAR_COLOR`."""
HIGHLIGHT_COLOR = "#e4572e"
"""Outline and tick label of the headline loss."""
WHISKER_COLOR = "#333333"
CURVE_POINTS = 400
"""Grid size of a mean curve when the seeds' x values differ (ROC)."""
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


def _loss_colors(names: Sequence[str]) -> dict[str, tuple]:
    """One stable colour per loss, in input order (tab10, tab20 beyond 10 losses)."""
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: palette(i % palette.N) for i, name in enumerate(names)}


def interval_bars(
    rows: Sequence[Row], metric: str, path: str | os.PathLike, highlight: str | None = None, title: str | None = None
) -> Path:
    """One bar per loss (input order): the mean of ``metric`` with its confidence interval as whiskers.

    Bars of the best loss and of every loss tied with it are coloured (:data:`BEST_COLOR`), the others
    grey; a flagged cell (too few events) is hatched, pale and marked with a dagger, never coloured as best.
    ``highlight`` (the headline loss) gets a thick :data:`HIGHLIGHT_COLOR` outline and tick label. Rates
    are drawn in %, the score on 0–1000; a loss without the metric shows "n/a".
    """
    if not rows:
        raise LossbenchError("interval_bars: no rows given — evaluate at least one loss first")
    info = metric_info(metric)
    names = [row.loss for row in rows]
    if len(set(names)) != len(names):
        raise LossbenchError(f"interval_bars: duplicate losses in {names}")
    if highlight is not None and highlight not in names:
        raise LossbenchError(f"interval_bars: highlighted loss {highlight!r} is not a row; choose one of {names}")
    cells = [row.cells.get(metric) for row in rows]
    if all(cell is None for cell in cells):
        raise LossbenchError(f"interval_bars: no loss has metric {metric!r}")
    scale = info.scale
    fig, ax = plt.subplots(figsize=BAR_SIZE, dpi=DPI)
    top = 0.0
    for i, (name, cell) in enumerate(zip(names, cells)):
        if cell is None:
            ax.annotate("n/a", (i, 0), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8)
            continue
        mean, low, high = scale * cell.mean, scale * cell.low, scale * cell.high
        top = max(top, high)
        strong = (cell.best or cell.tied) and not cell.flagged
        face = to_rgba(BEST_COLOR if strong else BAR_COLOR, 0.45 if cell.flagged else 1.0)
        ax.bar(
            i,
            mean,
            width=0.7,
            color=face,
            hatch="///" if cell.flagged else None,
            edgecolor=HIGHLIGHT_COLOR if name == highlight else "none",
            linewidth=3.0 if name == highlight else 0.0,
        )
        ax.errorbar(
            i,
            mean,
            yerr=[[max(mean - low, 0.0)], [max(high - mean, 0.0)]],
            fmt="none",
            ecolor=WHISKER_COLOR,
            elinewidth=1.2,
            capsize=4,
        )
        ax.annotate(
            f"{mean:.1f}" + (" †" if cell.flagged else ""),
            (i, high),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    bottom = min(0.0, *(scale * c.low for c in cells if c is not None))
    ax.set_ylim(bottom, max(top * 1.3, 1.0))  # headroom for the legend
    if info.kind == "rate":  # no tick above 100%
        ax.set_yticks([t for t in ax.get_yticks() if bottom <= t <= 100.0])
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    for tick, name in zip(ax.get_xticklabels(), names):
        if name == highlight:
            tick.set_color(HIGHLIGHT_COLOR)
            tick.set_fontweight("bold")
    better = ", lower is better" if info.lower_is_better else ""
    ax.set_ylabel(f"{info.label} ({info.unit}{better})")
    ax.set_title(title or f"{info.label}: mean and confidence interval per loss")
    handles = [Patch(color=BEST_COLOR, label="best or tied with it"), Patch(color=BAR_COLOR, label="other")]
    if any(c is not None and c.flagged for c in cells):
        handles.append(Patch(facecolor=to_rgba(BAR_COLOR, 0.45), hatch="///", label="† too few events"))
    if highlight is not None:
        handles.append(Patch(facecolor="none", edgecolor=HIGHLIGHT_COLOR, linewidth=2, label=f"headline: {highlight}"))
    ax.legend(
        handles=handles,
        fontsize=8,
        loc="upper center",
        ncol=len(handles),
        frameon=False,
        handlelength=1.5,
        columnspacing=1.2,
    )  # in the headroom above the tallest whisker
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return save_figure(fig, path)


def _mean_curve(runs: list[tuple[np.ndarray, np.ndarray]], logx: bool) -> tuple[np.ndarray, np.ndarray]:
    """The pointwise mean of the runs: directly when they share x, else on a common grid over the x range
    all runs cover (log-spaced for ``logx``), each run read at the grid as a step function (its last y at
    or before x: the upper point of a ROC's vertical step)."""
    if all(x.shape == runs[0][0].shape and np.array_equal(x, runs[0][0]) for x, _ in runs):
        return runs[0][0], np.mean([y for _, y in runs], axis=0)
    lo, hi = max(x.min() for x, _ in runs), min(x.max() for x, _ in runs)
    if not lo < hi:
        return np.empty(0), np.empty(0)
    grid = np.geomspace(lo, hi, CURVE_POINTS) if logx else np.linspace(lo, hi, CURVE_POINTS)
    values = []
    for x, y in runs:
        order = np.argsort(x, kind="stable")
        xs, ys = x[order], y[order]
        values.append(ys[np.clip(np.searchsorted(xs, grid, side="right") - 1, 0, xs.size - 1)])
    return grid, np.mean(values, axis=0)


def seed_curves(
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    path: str | os.PathLike,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
) -> Path:
    """Curves of several seeds per loss (e.g. CMC: rank vs accuracy; ROC: FPR vs TPR with ``logx``).

    Each loss has one colour: every seed is a thin translucent line, the mean over seeds a thick one
    (see :func:`_mean_curve`); the legend names each loss with its number of seeds. ``logx`` drops x ≤ 0.
    """
    if not curves:
        raise LossbenchError(f"seed_curves ({title}): no curves given")
    colors = _loss_colors(list(curves))
    fig, ax = plt.subplots(figsize=CURVE_SIZE, dpi=DPI)
    for name, seeds in curves.items():
        if len(seeds) == 0:
            raise LossbenchError(f"seed_curves ({title}): loss {name!r} has no seed curves")
        runs = []
        for s, (x, y) in enumerate(seeds):
            x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
            if x.shape != y.shape or x.size == 0:
                raise LossbenchError(
                    f"seed_curves ({title}): loss {name!r}, seed curve {s} needs x and y of one "
                    f"equal, non-zero length, got {x.size} and {y.size}"
                )
            keep = np.isfinite(x) & np.isfinite(y) & ((x > 0) if logx else True)
            if not keep.any():
                raise LossbenchError(
                    f"seed_curves ({title}): loss {name!r}, seed curve {s} has no finite "
                    f"point{' with x > 0 (log axis)' if logx else ''}"
                )
            runs.append((x[keep], y[keep]))
        marker = "o" if max(x.size for x, _ in runs) <= 20 else None
        for x, y in runs:
            ax.plot(x, y, color=colors[name], linewidth=0.8, alpha=0.35, marker=marker, markersize=2)
        mx, my = _mean_curve(runs, logx)
        label = f"{name} ({len(runs)} seed{'s' if len(runs) != 1 else ''})"
        if mx.size:
            ax.plot(mx, my, color=colors[name], linewidth=2.0, label=label, marker=marker, markersize=3)
        else:  # the seeds cover disjoint x ranges: no mean, but keep the loss in the legend
            ax.plot([], [], color=colors[name], linewidth=2.0, label=label)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if logx else "major")
    legend = ax.legend(fontsize=8, loc="best", title="thick: mean over seeds, thin: each seed", title_fontsize=7)
    legend.get_title().set_color("#555555")
    fig.tight_layout()
    return save_figure(fig, path)


def tsne_coordinates(
    embeddings: np.ndarray, labels: Sequence, seed: int = 0, max_identities: int = 20, perplexity: float = 30.0
) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of the items of at most ``max_identities`` identities (a seeded choice).

    Rows are L2-normalised first (cosine geometry, as in retrieval). The perplexity is clipped to
    ``(n - 1) / 3`` for small n. It runs on one thread: a few hundred points take seconds, and OpenMP
    threads on a busy machine make it many times slower. Returns ``(coordinates n×2, selected rows)``.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    if emb.ndim != 2 or emb.shape[1] < 2 or labels.shape != (emb.shape[0],):
        raise LossbenchError(
            f"tsne: need embeddings items × dim (dim ≥ 2) and one label per item, got "
            f"embeddings {emb.shape} and labels {labels.shape}"
        )
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
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=float(min(perplexity, (rows.size - 1) / 3)))
    with threadpool_limits(limits=1):
        coords = tsne.fit_transform(chosen)
    return coords, rows


def tsne_plot(
    embeddings: np.ndarray,
    labels: Sequence,
    roles: Sequence[str],
    path: str | os.PathLike,
    seed: int = 0,
    max_identities: int = 20,
    perplexity: float = 30.0,
    title: str = "t-SNE of test embeddings",
) -> Path:
    """t-SNE scatter: colour = identity, marker = role (query ○, gallery △)."""
    roles = np.asarray(roles)
    unknown = sorted(set(roles.tolist()) - set(ROLE_MARKERS))
    if roles.shape != (len(labels),) or unknown:
        raise LossbenchError(
            f"tsne_plot: need one role per item from {list(ROLE_MARKERS)}, got "
            f"{roles.shape[0]} roles for {len(labels)} items, unknown roles {unknown}"
        )
    coords, rows = tsne_coordinates(embeddings, labels, seed=seed, max_identities=max_identities, perplexity=perplexity)
    chosen_labels, chosen_roles = np.asarray(labels)[rows], roles[rows]
    identities, codes = np.unique(chosen_labels, return_inverse=True)
    palette = (
        matplotlib.colormaps["tab20"]
        if identities.size <= 20
        else matplotlib.colormaps["turbo"].resampled(identities.size)
    )
    colors = palette(codes)
    fig, ax = plt.subplots(figsize=TSNE_SIZE, dpi=DPI)
    for role, marker in ROLE_MARKERS.items():
        mask = chosen_roles == role
        ax.scatter(
            coords[mask, 0], coords[mask, 1], c=colors[mask], marker=marker, s=36, edgecolors="black", linewidths=0.4
        )
    handles = [
        Line2D([], [], linestyle="", marker=m, markerfacecolor="#cccccc", markeredgecolor="black", label=r)
        for r, m in ROLE_MARKERS.items()
    ]
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
        raise LossbenchError(
            f"retrieval_grid: {where} must be an HxWx3 uint8 image, got shape {array.shape} dtype {array.dtype}"
        )
    return array


def _framed(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """The image padded with a solid frame about 6% of its size (at least 2 pixels) wide."""
    width = max(2, round(0.06 * max(image.shape[:2])))
    return np.stack([np.pad(image[:, :, c], width, constant_values=color[c]) for c in range(3)], axis=2)


def retrieval_grid(
    queries: list[np.ndarray],
    results: list[list[np.ndarray]],
    correct: list[list[bool]],
    scores: list[list[float]],
    path: str | os.PathLike,
    titles: list[str] | None = None,
    *,
    colors: tuple[tuple[int, int, int], tuple[int, int, int]] = (RIGHT_COLOR, WRONG_COLOR),
) -> Path:
    """One row per query: the query (blue frame), then its ranked gallery images framed green when
    they are the query's identity and red when not, each with its similarity score underneath.

    ``colors`` is the (right, wrong) pair of frame colours (RGB); pass the same colour twice for a grid
    that makes no judgement."""
    n = len(queries)
    if n == 0:
        raise LossbenchError("retrieval_grid: no queries given")
    if not len(results) == len(correct) == len(scores) == n or (titles is not None and len(titles) != n):
        raise LossbenchError(
            f"retrieval_grid: need one results/correct/scores list (and title) per query; "
            f"got {n} queries, {len(results)} results, {len(correct)} correct, "
            f"{len(scores)} scores, {None if titles is None else len(titles)} titles"
        )
    for i, (res, ok, sc) in enumerate(zip(results, correct, scores)):
        if not len(res) == len(ok) == len(sc):
            raise LossbenchError(
                f"retrieval_grid: query {i} has {len(res)} results, {len(ok)} correct "
                f"flags and {len(sc)} scores; they must match"
            )
    right_color, wrong_color = colors
    k = max(len(res) for res in results)
    height = CELL_SIZE * n + _GRID_TOP + _GRID_BOTTOM
    fig, axes = plt.subplots(n, k + 1, figsize=(CELL_SIZE * (k + 1), height), dpi=DPI, squeeze=False)
    for axis in axes.ravel():
        axis.set_axis_off()
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(_framed(_as_rgb(queries[i], f"query {i}"), QUERY_COLOR), interpolation="nearest")
        ax.text(0.5, -0.04, titles[i] if titles else "query", transform=ax.transAxes, ha="center", va="top", fontsize=8)
        for j, (image, ok, score) in enumerate(zip(results[i], correct[i], scores[i])):
            ax = axes[i, j + 1]
            rgb = _as_rgb(image, f"result {j} of query {i}")
            ax.imshow(_framed(rgb, right_color if ok else wrong_color), interpolation="nearest")
            ax.text(0.5, -0.04, f"{float(score):.3f}", transform=ax.transAxes, ha="center", va="top", fontsize=8)
            if i == 0:
                ax.set_title(f"#{j + 1}", fontsize=8)
    fig.subplots_adjust(
        left=0.01, right=0.99, top=1 - _GRID_TOP / height, bottom=_GRID_BOTTOM / height, wspace=0.08, hspace=0.25
    )
    return save_figure(fig, path)
