"""Report layer: the loss comparison table (markdown / CSV / LaTeX) and the study's figures.

The tables need only the standard library; the figures (matplotlib, scikit-learn) are imported on first
use, so printing or writing a table stays light.
"""

from lossbench.report.tables import (
    Cell,
    Metric,
    Row,
    Study,
    metric_info,
    to_csv,
    to_latex,
    to_markdown,
    validate,
    write_tables,
)

_FIGURES = ("interval_bars", "retrieval_grid", "save_figure", "seed_curves", "tsne_coordinates", "tsne_plot")

__all__ = [
    "Cell",
    "Metric",
    "Row",
    "Study",
    "metric_info",
    "to_csv",
    "to_latex",
    "to_markdown",
    "validate",
    "write_tables",
    *_FIGURES,
]


def __getattr__(name: str):
    if name in _FIGURES:
        from lossbench.report import figures

        return getattr(figures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
