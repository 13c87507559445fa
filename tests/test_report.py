"""Report layer: comparison tables (markdown / CSV / LaTeX) and figures (PNG content, determinism)."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from lossbench.errors import LossbenchError
from lossbench.report import (comparison_frame, overlay_curves, retrieval_grid, score_bar, to_csv, to_latex,
                              to_markdown, tsne_coordinates, tsne_plot, write_tables)
from lossbench.report import figures
from lossbench.report.tables import COLUMNS

# Hand-made study. Best cells: top-1 arcface_center; top-5 tie (exact) arcface_center + clip; top-10 tie
# on the displayed value (90.0) baseline + arcface_center; EER lowest = clip; baseline has no ROC-AUC.
ROWS = [
    dict(loss="baseline", frozen=True, batch_size=64, epochs=0, weight_decay=0.0, dropout=0.0, top1=0.10,
         top5=0.30, top10=0.9001, mAP=0.05, map_at_r=0.04, r_precision=0.06, eer=0.30, score=200.0,
         cmc=[0.1, 0.2], num_queries=50),
    dict(loss="arcface_center", frozen=False, batch_size=64, epochs=12, weight_decay=1e-4, dropout=0.3,
         top1=0.55, top5=0.80, top10=0.9004, mAP=0.40, map_at_r=0.30, r_precision=0.35, roc_auc=0.95,
         eer=0.12, score=660.04),
    dict(loss="clip", frozen=False, batch_size=128, epochs=7, weight_decay=2.5e-4, dropout=0.1, top1=0.50,
         top5=0.80, top10=0.85, mAP=0.45, map_at_r=0.30, r_precision=0.34, roc_auc=0.96, eer=0.10,
         score=625.0),
]
EXPECTED_BOLD = {("arcface_center", "top-1"), ("arcface_center", "top-5"), ("clip", "top-5"),
                 ("baseline", "top-10"), ("arcface_center", "top-10"), ("clip", "mAP"),
                 ("arcface_center", "MAP@R"), ("clip", "MAP@R"), ("arcface_center", "R-prec"),
                 ("clip", "ROC-AUC"), ("clip", "EER"), ("arcface_center", "Score")}
HEADERS = [c.header for c in COLUMNS]


def markdown_cells(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0] == "| " + " | ".join(HEADERS) + " |"
    return [line[2:-2].split(" | ") for line in lines[2:]]


def latex_cells(text: str) -> list[list[str]]:
    body = text.split("\\midrule\n")[1].split("\\bottomrule")[0]
    return [line.removesuffix(" \\\\").split(" & ") for line in body.strip().splitlines()]


def bold_set(cells: list[list[str]], is_bold) -> set[tuple[str, str]]:
    return {(row[0], HEADERS[j]) for row in cells for j, cell in enumerate(row) if is_bold(cell)}


def test_frame_keeps_order_types_and_missing_metrics():
    df = comparison_frame(ROWS)
    assert df["loss"].tolist() == ["baseline", "arcface_center", "clip"]
    assert list(df.columns) == [c.key for c in COLUMNS]
    assert math.isnan(df.loc[0, "roc_auc"]) and df.loc[1, "roc_auc"] == 0.95
    assert df["frozen"].tolist() == [True, False, False] and df["epochs"].tolist() == [0, 12, 7]


def test_markdown_formats_and_bolds_exactly_the_best_cells():
    cells = markdown_cells(to_markdown(comparison_frame(ROWS)))
    assert bold_set(cells, lambda c: c.startswith("**") and c.endswith("**")) == EXPECTED_BOLD
    plain = [[c.strip("*") for c in row] for row in cells]
    assert plain[0] == ["baseline", "✓", "64", "0", "0", "0", "10.0", "30.0", "90.0", "5.0", "4.0", "6.0",
                        "–", "30.0", "200.0"]
    assert plain[1][1:6] == ["✗", "64", "12", "1e-04", "0.3"]
    assert plain[1][-1] == "660.0" and plain[2][4] == "2.5e-04" and plain[2][-2] == "10.0"


def test_bold_needs_two_values_and_ties_are_all_bold():
    single = markdown_cells(to_markdown(comparison_frame(ROWS[:1])))
    assert not any(cell.startswith("**") for cell in single[0])
    same = [dict(ROWS[0], loss=name, eer=0.2) for name in ("a", "b")]
    cells = markdown_cells(to_markdown(comparison_frame(same)))
    assert all(row[HEADERS.index("EER")] == "**20.0**" for row in cells)


def test_csv_round_trips_raw_numbers():
    df = comparison_frame(ROWS)
    back = pd.read_csv(io.StringIO(to_csv(df)))
    assert list(back.columns) == [c.key for c in COLUMNS]
    assert back["loss"].tolist() == df["loss"].tolist() and back["frozen"].tolist() == [True, False, False]
    for key in ["batch_size", "epochs", "weight_decay", "dropout", "top1", "top10", "roc_auc", "eer", "score"]:
        expected = [row.get(key, np.nan) for row in ROWS]
        np.testing.assert_array_equal(back[key].to_numpy(dtype=float), np.array(expected, dtype=float))


def test_latex_is_a_booktabs_table_with_escaped_names_and_bold_best():
    tex = to_latex(comparison_frame(ROWS), caption="Losses.", label="tab:x")
    assert tex.startswith("\\begin{table}") and tex.rstrip().endswith("\\end{table}")
    assert tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    assert "\\caption{Losses.}" in tex and "\\label{tab:x}" in tex
    cells = latex_cells(tex)
    assert [row[0] for row in cells] == ["baseline", "arcface\\_center", "clip"]
    names = {"arcface\\_center": "arcface_center"}
    bold = bold_set(cells, lambda c: c.startswith("\\textbf{"))
    assert {(names.get(loss, loss), header) for loss, header in bold} == EXPECTED_BOLD
    assert cells[0][1] == "yes" and cells[0][12] == "--" and cells[1][4] == "1e-04"


@pytest.mark.parametrize("bad, message", [
    ({"top1": 85.0}, "fractions"),
    ({"frozen": "yes"}, "true/false"),
    ({"epochs": 2.5}, "integer"),
    ({"loss": ""}, "non-empty"),
])
def test_bad_rows_raise_clear_errors(bad, message):
    with pytest.raises(LossbenchError, match=message):
        comparison_frame([dict(ROWS[0], **bad)])


def test_duplicate_loss_is_rejected():
    with pytest.raises(LossbenchError, match="twice"):
        comparison_frame([ROWS[0], ROWS[0]])


def test_write_tables_writes_three_formats(tmp_path):
    df = comparison_frame(ROWS)
    paths = write_tables(df, tmp_path / "out" / "comparison")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["comparison.csv", "comparison.md",
                                                                   "comparison.tex"]
    assert paths["md"].read_text(encoding="utf-8") == to_markdown(df)
    assert paths["tex"].read_text(encoding="utf-8") == to_latex(df)


def load_rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def count_color(pixels: np.ndarray, rgb) -> int:
    return int(np.all(pixels == np.asarray(rgb, dtype=np.uint8), axis=2).sum())


def test_score_bar_highlights_the_headline_loss(tmp_path):
    scores = {"baseline": 120.0, "arcface": 640.0, "clip": 580.0}
    highlight = tuple(round(255 * c) for c in to_rgb(figures.HIGHLIGHT_COLOR))
    with_headline = load_rgb(score_bar(scores, tmp_path / "a.png", highlight="arcface"))
    without = load_rgb(score_bar(scores, tmp_path / "b.png"))
    assert with_headline.shape == (4 * figures.DPI, 7 * figures.DPI, 3)
    assert count_color(with_headline, highlight) > 1000 and count_color(without, highlight) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temporary files left
    with pytest.raises(LossbenchError, match="highlighted loss 'nope'"):
        score_bar(scores, tmp_path / "c.png", highlight="nope")


def test_overlay_curves_writes_png_and_checks_lengths(tmp_path):
    fpr = np.r_[0.0, np.logspace(-4, 0, 50)]
    curves = {"arcface": (fpr, fpr ** 0.2), "clip": (fpr, fpr ** 0.5)}
    pixels = load_rgb(overlay_curves(curves, tmp_path / "roc.png", "FPR", "TPR", "ROC", logx=True))
    assert pixels.shape == (540, 720, 3) and pixels.std() > 0
    with pytest.raises(LossbenchError, match="'clip'"):
        overlay_curves({"clip": (np.arange(3), np.arange(4))}, tmp_path / "bad.png", "x", "y", "t")


def toy_embeddings(identities: int, per_id: int, dim: int = 16):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(identities), per_id)
    emb = rng.normal(size=(labels.size, dim)) + 3 * rng.normal(size=(identities, dim))[labels]
    roles = np.tile(["query"] + ["gallery"] * (per_id - 1), identities)
    return emb, labels, roles


def test_tsne_is_seeded_and_limits_identities(tmp_path):
    emb, labels, roles = toy_embeddings(25, 4)
    coords, rows = tsne_coordinates(emb, labels, seed=3, max_identities=5)
    again, rows_again = tsne_coordinates(emb, labels, seed=3, max_identities=5)
    np.testing.assert_array_equal(coords, again)
    np.testing.assert_array_equal(rows, rows_again)
    assert coords.shape == (20, 2) and np.unique(labels[rows]).size == 5
    _, other_rows = tsne_coordinates(emb, labels, seed=4, max_identities=5)
    assert set(labels[other_rows]) != set(labels[rows])
    first = tsne_plot(emb, labels, roles, tmp_path / "a.png", seed=3, max_identities=5).read_bytes()
    assert tsne_plot(emb, labels, roles, tmp_path / "b.png", seed=3, max_identities=5).read_bytes() == first
    assert load_rgb(tmp_path / "a.png").shape == (6 * figures.DPI, 7 * figures.DPI, 3)


def test_tsne_clips_perplexity_for_tiny_sets_and_checks_roles(tmp_path):
    emb, labels, roles = toy_embeddings(3, 2)
    coords, _ = tsne_coordinates(emb, labels, perplexity=30.0)
    assert coords.shape == (6, 2) and np.isfinite(coords).all()
    with pytest.raises(LossbenchError, match="unknown roles \\['train'\\]"):
        tsne_plot(emb, labels, ["train"] * 6, tmp_path / "t.png")


def frame_mask(pixels: np.ndarray, rgb) -> np.ndarray:
    return np.all(np.abs(pixels.astype(int) - np.asarray(rgb)) <= 10, axis=2)


def test_retrieval_grid_frames_right_green_and_wrong_red(tmp_path):
    grey = lambda value: np.full((48, 48, 3), value, np.uint8)  # noqa: E731
    queries = [grey(100), np.full((48, 48), 150, np.uint8)]  # a grey HxW query is accepted too
    results = [[grey(80), grey(120), grey(200)], [grey(60), grey(90)]]
    correct = [[True, False, False], [False, True]]
    scores = [[0.9, 0.8, 0.7], [0.6, 0.5]]
    pixels = load_rgb(retrieval_grid(queries, results, correct, scores, tmp_path / "grid.png", titles=["a", "b"]))
    half = pixels.shape[0] // 2
    for row, (band, ok) in enumerate(zip((pixels[:half], pixels[half:]), correct)):
        green, red, blue = (frame_mask(band, c) for c in (figures.RIGHT_COLOR, figures.WRONG_COLOR,
                                                          figures.QUERY_COLOR))
        xs = {name: np.nonzero(mask)[1] for name, mask in (("green", green), ("red", red), ("blue", blue))}
        assert all(x.size > 0 for x in xs.values()), row
        assert xs["blue"].max() < min(xs["green"].min(), xs["red"].min())  # query frame comes first
        # one frame per result: the pixel ratio red/green equals the ratio of wrong to right results
        assert red.sum() / green.sum() == pytest.approx(ok.count(False) / ok.count(True), rel=0.1)
        first_is_green = xs["green"].min() < xs["red"].min()
        assert first_is_green == ok[0]
    with pytest.raises(LossbenchError, match="query 1 has 2 results"):
        retrieval_grid(queries, results, correct, [[0.9, 0.8, 0.7], [0.6]], tmp_path / "bad.png")
