"""Report layer: the loss comparison table (markdown / CSV / LaTeX) and the study's figures."""

from lossbench.report.figures import overlay_curves, retrieval_grid, score_bar, tsne_coordinates, tsne_plot
from lossbench.report.tables import comparison_frame, to_csv, to_latex, to_markdown, write_tables

__all__ = ["comparison_frame", "overlay_curves", "retrieval_grid", "score_bar", "to_csv", "to_latex",
           "to_markdown", "tsne_coordinates", "tsne_plot", "write_tables"]
