"""Report layer: comparison tables with uncertainty (markdown / CSV / LaTeX) and figures (PNG content)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.colors import to_rgb
from PIL import Image
from scipy.stats import t as scipy_t

from lossbench.comparison import figures
from lossbench.comparison.compare import detectability, settings_of, tuning_of
from lossbench.comparison.figures import interval_bars, retrieval_grid, seed_curves, tsne_coordinates, tsne_plot
from lossbench.comparison.tables import (
    Cell,
    Detectable,
    Resolve,
    Row,
    Study,
    Tuning,
    format_diff,
    format_share,
    format_value,
    half_width,
    metric_info,
    to_csv,
    to_latex,
    to_markdown,
    write_tables,
)
from lossbench.comparison.verdicts import summarize
from lossbench.config.params import parse_params
from lossbench.core.errors import LossbenchError
from lossbench.tuning.records import StudyRecord, TrialRow, write_record

STUDY = Study(
    seeds=3, resamples=1000, confidence=0.95, headline_metric="score", index_factory="Flat", queries=120, identities=40
)


def c(mean, half, best=False, tied=False, flagged=False, diff=None, p=None):
    """A symmetric cell; ``diff`` gets an interval of ±1.2·half."""
    d = {} if diff is None else dict(diff=diff, diff_low=diff - 1.2 * half, diff_high=diff + 1.2 * half)
    return Cell(mean, mean - half, mean + half, best=best, tied=tied or best, flagged=flagged, p_first=p, **d)


# Hand-made study of 3 losses. Verdicts as the lead's stats would give them:
#   score: clip best, arcface_center tied (difference interval [-34, 14] holds 0), baseline not tied;
#   top1: arcface_center best alone; top5: clip best + arcface_center tied; EER (lower is better): clip best;
#   TAR@1e-4: arcface_center best but flagged (never bold), clip tied (bold), baseline flagged.
CELLS = {
    "baseline": dict(
        score=c(300.0, 30.0, diff=-400.0, p=0.0),
        top1=c(0.10, 0.02, diff=-0.45),
        top5=c(0.30, 0.03),
        top10=c(0.40, 0.03),
        mAP=c(0.05, 0.01),
        map_at_r=c(0.04, 0.01),
        r_precision=c(0.06, 0.01),
        roc_auc=c(0.70, 0.02),
        eer=c(0.30, 0.02),
        **{"tar_at_far_1e-03": c(0.05, 0.01), "tar_at_far_1e-04": c(0.01, 0.01, flagged=True)},
    ),
    "arcface_center": dict(
        score=c(690.0, 25.0, tied=True, diff=-10.0, p=0.38),
        top1=c(0.55, 0.03, best=True),
        top5=c(0.79, 0.02, tied=True),
        top10=c(0.85, 0.02, best=True),
        mAP=c(0.40, 0.02, tied=True),
        map_at_r=c(0.30, 0.02, best=True),
        r_precision=c(0.35, 0.02, best=True),
        roc_auc=c(0.95, 0.01, tied=True),
        eer=c(0.11, 0.01, tied=True),
        **{"tar_at_far_1e-03": c(0.60, 0.05, best=True), "tar_at_far_1e-04": c(0.30, 0.10, best=True, flagged=True)},
    ),
    "clip": dict(
        score=c(700.0, 20.0, best=True, p=0.62),
        top1=c(0.50, 0.02),
        top5=c(0.80, 0.02, best=True),
        top10=c(0.80, 0.02),
        mAP=c(0.45, 0.02, best=True),
        map_at_r=c(0.25, 0.02),
        r_precision=c(0.30, 0.02),
        roc_auc=c(0.96, 0.01, best=True),
        eer=c(0.10, 0.01, best=True),
        **{"tar_at_far_1e-03": c(0.50, 0.05), "tar_at_far_1e-04": c(0.28, 0.05, tied=True)},
    ),
}
SETTINGS = {
    "baseline": dict(frozen=True, batch_size=64, epochs=0.0, lr=1e-3, weight_decay=1e-4, dropout=0.3, options="—"),
    "arcface_center": dict(
        frozen=True,
        batch_size=64,
        epochs=12.3333,
        lr=1e-3,
        weight_decay=1e-4,
        dropout=0.3,
        options="scale=64, margin=0.5, center_weight=0.01",
    ),
    "clip": dict(
        frozen=True, batch_size=64, epochs=7.0, lr=1e-3, weight_decay=1e-4, dropout=0.3, options="temperature=0.07"
    ),
}
EXACT_KEYS = list(CELLS["clip"])
HEADERS = [
    "Loss",
    "Score",
    "Δ vs best",
    "P(best)",
    "top-1",
    "top-5",
    "top-10",
    "mAP",
    "MAP@R",
    "R-prec",
    "ROC-AUC",
    "EER",
    "TAR@1e-3",
    "TAR@1e-4",
    "Epochs",
    "Options",
]
EXPECTED_BOLD = {
    ("clip", "Score"),
    ("arcface_center", "Score"),
    ("arcface_center", "top-1"),
    ("clip", "top-5"),
    ("arcface_center", "top-5"),
    ("arcface_center", "top-10"),
    ("clip", "mAP"),
    ("arcface_center", "mAP"),
    ("arcface_center", "MAP@R"),
    ("arcface_center", "R-prec"),
    ("clip", "ROC-AUC"),
    ("arcface_center", "ROC-AUC"),
    ("clip", "EER"),
    ("arcface_center", "EER"),
    ("arcface_center", "TAR@1e-3"),
    ("clip", "TAR@1e-4"),
}


def make_rows(index: str = "exact", **overrides) -> list[Row]:
    """The 3 rows; ``index="exact"`` adds index_* cells equal to the exact ones, ``"approx"`` lowers
    clip's index top-1, ``"none"`` adds none."""
    rows = []
    for loss, cells in CELLS.items():
        cells = dict(cells)
        if index != "none":
            for key in ("score", "top1", "top5", "top10"):
                cells[f"index_{key}"] = cells[key]
            if index == "approx" and loss == "clip":
                cells["index_top1"] = c(0.48, 0.02)
        rows.append(Row(loss, dict(SETTINGS[loss]), cells))
    return rows


def md_table(text: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    split = [line[2:-2].split(" | ") for line in lines]
    return split[0], split[2:]


def bold_cells(headers, body) -> set[tuple[str, str]]:
    return {(row[0], headers[j]) for row in body for j, cell in enumerate(row) if cell.startswith("**")}


# -- formatting ------------------------------------------------------------------------------------


def test_cell_formatting_helpers():
    rate, score = metric_info("top1"), metric_info("score")
    assert format_value(rate, 0.1234) == "12.3" and format_value(score, 654.321) == "654.3"
    assert half_width(Cell(0.5, 0.45, 0.52, best=False, tied=False)) == pytest.approx(0.05)  # wider side
    assert format_diff(score, c(690.0, 25.0, diff=-10.0)) == "-10.0 [-40.0, +20.0]"
    assert format_diff(rate, c(0.5, 0.02, diff=0.031)) == "+3.1 [+0.7, +5.5]"  # percentage points
    assert format_diff(score, c(700.0, 20.0, best=True)) == "best" and format_diff(score, c(1.0, 1.0)) == "–"
    assert [format_share(p) for p in (None, 0.0, 0.004, 0.62, 0.996, 1.0)] == ["–", "0%", "<1%", "62%", ">99%", "100%"]
    assert metric_info("tar_at_far_1e-04").header == "TAR@1e-4" and metric_info("top20").header == "top-20"
    assert metric_info("index_top5").header == "idx top-5" and metric_info("eer").lower_is_better
    with pytest.raises(LossbenchError, match="unknown metric 'recall'"):
        metric_info("recall")


def test_markdown_columns_cells_and_bold_is_best_plus_ties_never_flagged():
    text = to_markdown(make_rows(), STUDY)
    headers, body = md_table(text)
    assert headers == HEADERS
    assert [row[0] for row in body] == ["baseline", "arcface_center", "clip"]
    assert bold_cells(headers, body) == EXPECTED_BOLD
    base, arc, clip = ({h: cell for h, cell in zip(headers, row)} for row in body)
    assert clip["Score"] == "**700.0 ± 20.0**" and base["top-1"] == "10.0 ± 2.0" and clip["EER"] == "**10.0 ± 1.0**"
    assert (clip["Δ vs best"], arc["Δ vs best"], base["Δ vs best"]) == (
        "best",
        "-10.0 [-40.0, +20.0]",
        "-400.0 [-436.0, -364.0]",
    )
    assert (clip["P(best)"], arc["P(best)"], base["P(best)"]) == ("62%", "38%", "0%")
    # flagged: a mark, never bold, even for the best mean
    assert arc["TAR@1e-4"] == "30.0 ± 10.0 †" and base["TAR@1e-4"] == "1.0 ± 1.0 †"
    assert "†: rests on too few events" in text
    assert (base["Epochs"], arc["Epochs"], clip["Epochs"]) == ("0", "12.3", "7")
    assert arc["Options"] == "scale=64, margin=0.5, center_weight=0.01" and base["Options"] == "—"


def test_markdown_legend_explains_interval_bold_and_p_best():
    text = to_markdown(make_rows(), STUDY)
    assert "mean over 3 training seeds ± the half-width of its 95% confidence interval" in text
    assert "training randomness and test sampling (bootstrap over the 40 test identities, 1000 resamples" in text
    assert "**Bold**: the best loss of each metric and every loss tied with it" in text
    assert "P(best): share of the 1000 resamples (test identities and seeds)" in text
    assert "Rates in %; score 0–1000 (600·top-1 + 300·top-5 + 100·top-10); EER: lower is better." in text
    assert "wider side" not in text  # every interval is symmetric
    one_seed = to_markdown(make_rows(), dataclasses.replace(STUDY, seeds=1))
    assert "single training seed" in one_seed and "covers test sampling only" in one_seed
    assert "training randomness and test sampling" not in one_seed
    rows = make_rows()
    cells = dict(rows[0].cells, top1=Cell(0.10, 0.07, 0.12, best=False, tied=False))
    skewed = to_markdown([dataclasses.replace(rows[0], cells=cells), *rows[1:]], STUDY)
    assert "10.0 ± 3.0" in skewed and "the wider side where it is asymmetric" in skewed


def test_constant_settings_leave_the_table_and_varying_ones_stay():
    text = to_markdown(make_rows(), STUDY)
    headers, _ = md_table(text)
    assert "All losses: frozen backbone, batch 64, lr 1e-3, weight decay 1e-4, dropout 0.3.\n" in text
    assert not {"Backbone", "Batch", "LR", "WD", "Dropout"} & set(headers)
    rows = make_rows()
    rows[2] = dataclasses.replace(
        rows[2], settings=dict(rows[2].settings, frozen=False, batch_size=128, epochs=12.3333)
    )
    headers, body = md_table(to_markdown(rows, STUDY))
    assert headers[-4:] == ["Backbone", "Batch", "Epochs", "Options"]
    assert [row[-4:-1] for row in body] == [
        ["frozen", "64", "0"],
        ["frozen", "64", "12.3"],
        ["fine-tuned", "128", "12.3"],
    ]
    assert "All losses: lr 1e-3, weight decay 1e-4, dropout 0.3." in to_markdown(rows, STUDY)


def test_index_columns_only_when_they_differ():
    exact = to_markdown(make_rows("exact"), STUDY)
    assert not any(h.startswith("idx") for h in md_table(exact)[0])
    assert "The FAISS index (Flat) returns the exact ranking" in exact
    approx = to_markdown(make_rows("approx"), dataclasses.replace(STUDY, index_factory="IVF64,PQ8"))
    headers, body = md_table(approx)
    assert headers[headers.index("TAR@1e-4") + 1 :][:4] == ["idx Score", "idx top-1", "idx top-5", "idx top-10"]
    assert body[2][headers.index("idx top-1")] == "48.0 ± 2.0" and body[2][headers.index("top-1")] == "50.0 ± 2.0"
    assert "measured through the FAISS index (IVF64,PQ8), which is approximate" in approx
    none = to_markdown(make_rows("none"), STUDY)
    assert "FAISS" not in none and md_table(none)[0] == HEADERS


# -- CSV -------------------------------------------------------------------------------------------


def test_csv_columns_and_values_round_trip():
    rows = make_rows()
    records = list(csv.DictReader(io.StringIO(to_csv(rows, STUDY))))
    columns = list(records[0])
    assert columns[:8] == ["loss", "frozen", "batch_size", "epochs", "lr", "weight_decay", "dropout", "options"]
    assert columns[8:18] == [
        "score",
        "score_low",
        "score_high",
        "score_best",
        "score_tied",
        "score_flagged",
        "score_diff",
        "score_diff_low",
        "score_diff_high",
        "score_p_first",
    ]
    for key in EXACT_KEYS + ["index_top1"]:
        assert {f"{key}", f"{key}_low", f"{key}_high", f"{key}_tied", f"{key}_flagged"} <= set(columns)
    for row, record in zip(rows, records):
        assert record["loss"] == row.loss and record["options"] == row.settings["options"]
        assert record["frozen"] == "True" and int(record["batch_size"]) == 64
        assert float(record["epochs"]) == row.settings["epochs"] and float(record["lr"]) == 1e-3
        for key, cell in row.cells.items():
            assert [float(record[key]), float(record[f"{key}_low"]), float(record[f"{key}_high"])] == [
                cell.mean,
                cell.low,
                cell.high,
            ]  # exact, fractions (not %)
            assert (record[f"{key}_tied"], record[f"{key}_flagged"]) == (str(cell.tied), str(cell.flagged))
    clip, arc = records[2], records[1]
    assert clip["score_diff"] == "" and float(arc["score_diff"]) == -10.0 and float(arc["score_diff_low"]) == -40.0
    assert float(clip["score_p_first"]) == 0.62 and float(clip["top1"]) == 0.5
    assert arc["tar_at_far_1e-04_flagged"] == "True" and arc["tar_at_far_1e-04_best"] == "True"


# -- validation ------------------------------------------------------------------------------------


def replace_cell(key: str, cell: Cell) -> list[Row]:
    rows = make_rows()
    rows[0] = dataclasses.replace(rows[0], cells={**rows[0].cells, key: cell})
    return rows


@pytest.mark.parametrize(
    "rows, message",
    [
        ([], "no rows given"),
        (make_rows()[:2] + make_rows()[1:2], "'arcface_center' appears twice"),
        (replace_cell("top1", Cell(55.0, 50.0, 60.0, best=False, tied=False)), "not percentages"),
        (replace_cell("score", Cell(1200.0, 1100.0, 1300.0, best=False, tied=False)), r"outside \[0, 1000\]"),
        (replace_cell("top1", Cell(0.5, 0.55, 0.6, best=False, tied=False)), "low ≤ mean ≤ high"),
        (replace_cell("top1", Cell(0.5, 0.4, 0.45, best=False, tied=False)), "low ≤ mean ≤ high"),
        (replace_cell("top1", Cell(float("nan"), 0.4, 0.45, best=False, tied=False)), "finite"),
        (replace_cell("top1", Cell(0.5, 0.4, 0.6, best=False, tied=False, diff=-0.1)), "given together"),
        (replace_cell("top1", Cell(0.5, 0.4, 0.6, best=False, tied=False, p_first=1.5)), "p_first"),
        (replace_cell("recall", Cell(0.5, 0.4, 0.6, best=False, tied=False)), "unknown metric 'recall'"),
    ],
)
def test_bad_input_raises_clear_errors(rows, message):
    for render in (to_markdown, to_csv, to_latex):
        with pytest.raises(LossbenchError, match=message):
            render(rows, STUDY)


def test_bad_study_raises_clear_errors():
    with pytest.raises(LossbenchError, match="headline metric 'mAP' is in no row"):
        to_markdown(
            [Row("a", {}, {"score": c(1.0, 0.5, best=True)})], dataclasses.replace(STUDY, headline_metric="mAP")
        )
    with pytest.raises(LossbenchError, match="seeds must be a positive integer.*confidence must be in"):
        to_markdown(make_rows(), dataclasses.replace(STUDY, seeds=0, confidence=95))


# -- LaTeX -----------------------------------------------------------------------------------------


def latex_rows(tex: str) -> list[list[str]]:
    """Header and body rows of the first booktabs tabular in ``tex``."""
    body = tex.split("\\toprule\n")[1].split("\\bottomrule")[0]
    return [line.removesuffix(" \\\\").split(" & ") for line in body.strip().splitlines() if line != "\\midrule"]


def test_latex_table_structure_caption_and_settings():
    tex = to_latex(make_rows(), STUDY, label="tab:x")
    assert tex.startswith("\\begin{table}") and tex.rstrip().endswith("\\end{table}")
    assert "\\label{tab:x}" in tex and tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    assert "\\resizebox" not in tex and "\\scalebox" not in tex
    caption = re.search(r"\\caption\{(.*)\}\n", tex).group(1)
    assert "All losses: frozen backbone, batch 64, lr 1e-3, weight decay 1e-4, dropout 0.3." in caption
    assert "95\\% confidence interval" in caption and "Bold: the best loss and every loss tied with it" in caption
    main = latex_rows(tex)
    assert main[0] == ["Loss", "Score", "top-1", "mAP", "ROC-AUC", "EER"]
    assert [r[0] for r in main[1:]] == ["baseline", "arcface\\_center", "clip"]
    assert main[3][1] == "\\textbf{700.0}\\,{\\scriptsize$\\pm$20.0}" and main[1][2] == "10.0\\,{\\scriptsize$\\pm$2.0}"
    assert main[2][2].startswith("\\textbf{55.0}") and not main[3][2].startswith("\\textbf")
    settings = latex_rows(tex.split("\\end{tabular}")[1])
    assert settings[0] == ["Loss", "Epochs", "Options"]
    assert settings[2] == [
        "arcface\\_center",
        "12.3",
        "scale=64,\\allowbreak{} margin=0.5,\\allowbreak{} center\\_weight=0.01",
    ]
    flagged = to_latex(make_rows(), STUDY, metrics=["tar_at_far_1e-04"])
    assert "30.0$^\\dagger$\\,{\\scriptsize$\\pm$10.0}" in flagged and "$^\\dagger$: too few events" in flagged
    same_options = [dataclasses.replace(r, settings=dict(r.settings, options="—")) for r in make_rows()]
    plain = to_latex(same_options, STUDY)
    assert (
        "tabularx" not in plain
        and "no loss options" in plain
        and latex_rows(plain.split("\\end{tabular}")[1])[0] == ["Loss", "Epochs"]
    )


LONG_NAMES = [
    "arcface_center",
    "cosface_center",
    "contrastive_xbm",
    "triplet_semihard",
    "supcon_proxy",
    "baseline",
    "center_ce",
    "clip_learnable",
    "multisimilarity",
]


def worst_case_rows() -> list[Row]:
    """9 losses with long names, every cell bold with wide intervals (a tiny test set), one flagged EER."""
    rows = []
    for i, name in enumerate(LONG_NAMES):
        cells = {
            key: c(
                999.9 if key == "score" else 0.999,
                123.4 if key == "score" else 0.123,
                best=i == 0,
                tied=True,
                diff=None if i == 0 else -0.1,
                p=0.5,
            )
            for key in EXACT_KEYS
        }
        cells["eer"] = c(0.999, 0.123, tied=True, flagged=i == 3)
        rows.append(
            Row(
                name,
                dict(
                    frozen=False,
                    batch_size=64 + i,
                    epochs=10.0 + i / 3,
                    lr=1e-3,
                    options="scale=64, margin=0.35, mining=semihard, memory=4096, pos_margin=0.0",
                ),
                cells,
            )
        )
    return rows


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles_on_a_one_column_page_without_overfull_boxes(tmp_path):
    plain = [dataclasses.replace(r, settings=dict(r.settings, options="—")) for r in make_rows()]
    for name, rows in (("typical", make_rows()), ("worst", worst_case_rows()), ("plain_settings", plain)):
        document = (
            "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{tabularx}\n\\begin{document}\n"
            f"{to_latex(rows, STUDY)}\n\\end{{document}}\n"
        )
        (tmp_path / f"{name}.tex").write_text(document, encoding="utf-8")
        run = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = (tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        assert run.returncode == 0, log[-2000:]
        assert "Overfull \\hbox" not in log, [line for line in log.splitlines() if "Overfull" in line]


def test_write_tables_writes_three_formats_atomically(tmp_path):
    rows = make_rows()
    paths = write_tables(rows, STUDY, tmp_path / "out" / "comparison")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["comparison.csv", "comparison.md", "comparison.tex"]
    assert paths["md"].read_text(encoding="utf-8") == to_markdown(rows, STUDY)
    assert paths["csv"].read_text(encoding="utf-8") == to_csv(rows, STUDY)
    assert paths["tex"].read_text(encoding="utf-8") == to_latex(rows, STUDY)
    with pytest.raises(LossbenchError):
        write_tables([], STUDY, tmp_path / "bad" / "comparison")
    assert not (tmp_path / "bad").exists()  # nothing written when the input is bad


# -- figures ---------------------------------------------------------------------------------------


def load_rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def count_color(pixels: np.ndarray, color) -> int:
    rgb = np.asarray([round(255 * v) for v in to_rgb(color)] if isinstance(color, str) else color, dtype=np.uint8)
    return int(np.all(pixels == rgb, axis=2).sum())


def test_interval_bars_colour_best_and_tied_not_flagged_and_highlight(tmp_path):
    rows = make_rows()
    score = load_rgb(interval_bars(rows, "score", tmp_path / "score.png", highlight="baseline"))
    assert score.shape == (4 * figures.DPI, 7 * figures.DPI, 3)
    top1 = load_rgb(interval_bars(rows, "top1", tmp_path / "top1.png"))
    # score: best + tied = 2 coloured bars (clip 700, arcface_center 690); top-1: 1 bar (arcface_center 55%)
    two, one = count_color(score, figures.BEST_COLOR), count_color(top1, figures.BEST_COLOR)
    assert one > 2000 and two > 1.6 * one
    # TAR@1e-4: the best (arcface_center) is flagged, so only clip's bar is coloured; the legend explains †
    tar = load_rgb(interval_bars(rows, "tar_at_far_1e-04", tmp_path / "tar.png"))
    assert 0 < count_color(tar, figures.BEST_COLOR) < one
    assert count_color(score, figures.HIGHLIGHT_COLOR) > 500 and count_color(top1, figures.HIGHLIGHT_COLOR) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["score.png", "tar.png", "top1.png"]  # no temp files
    with pytest.raises(LossbenchError, match="highlighted loss 'nope'"):
        interval_bars(rows, "score", tmp_path / "x.png", highlight="nope")
    with pytest.raises(LossbenchError, match="no loss has metric 'top20'"):
        interval_bars(rows, "top20", tmp_path / "x.png")


def test_seed_curves_write_png_for_shared_and_differing_x(tmp_path):
    rng = np.random.default_rng(0)
    ranks = np.arange(1, 11)
    cmc = {loss: [(ranks, np.sort(rng.uniform(0.2, 1.0, 10))) for _ in range(3)] for loss in ("a", "b")}
    pixels = load_rgb(seed_curves(cmc, tmp_path / "cmc.png", "rank", "accuracy", "CMC"))
    assert pixels.shape == (540, 720, 3) and pixels.std() > 0

    def roc(power):  # each seed has its own FPR grid, starting at 0 (dropped on the log axis)
        fpr = np.r_[0.0, np.sort(rng.uniform(0, 1, 200)), 1.0]
        return fpr, fpr**power

    rocs = {"a": [roc(0.2), roc(0.25)], "b": [roc(0.5)]}
    assert load_rgb(seed_curves(rocs, tmp_path / "roc.png", "FPR", "TPR", "ROC", logx=True)).std() > 0
    grid, mean = figures._mean_curve(
        [(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.0])), (np.array([1.0, 3.0]), np.array([0.5, 1.0]))],
        logx=False,
    )
    assert grid[0] == 1.0 and grid[-1] == 3.0 and mean[0] == 0.25 and mean[-1] == 1.0  # step functions
    with pytest.raises(LossbenchError, match="loss 'b', seed curve 0"):
        seed_curves({"b": [(np.arange(3), np.arange(4))]}, tmp_path / "bad.png", "x", "y", "t")
    with pytest.raises(LossbenchError, match="'c' has no seed curves"):
        seed_curves({"c": []}, tmp_path / "bad.png", "x", "y", "t")


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
        green, red, blue = (
            frame_mask(band, c) for c in (figures.RIGHT_COLOR, figures.WRONG_COLOR, figures.QUERY_COLOR)
        )
        xs = {name: np.nonzero(mask)[1] for name, mask in (("green", green), ("red", red), ("blue", blue))}
        assert all(x.size > 0 for x in xs.values()), row
        assert xs["blue"].max() < min(xs["green"].min(), xs["red"].min())  # query frame comes first
        # one frame per result: the pixel ratio red/green equals the ratio of wrong to right results
        assert red.sum() / green.sum() == pytest.approx(ok.count(False) / ok.count(True), rel=0.1)
        first_is_green = xs["green"].min() < xs["red"].min()
        assert first_is_green == ok[0]
    with pytest.raises(LossbenchError, match="query 1 has 2 results"):
        retrieval_grid(queries, results, correct, [[0.9, 0.8, 0.7], [0.6]], tmp_path / "bad.png")


# -- tuning and what the study can detect ------------------------------------------------------------


ROOT = Path(__file__).resolve().parents[1]


def params_with(**tune):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["tune"].update(tune)
    return parse_params(raw)


TUNED = Tuning("arcface_center", trials=4, complete=3, pruned=1, best=0.5, median=0.3, retrained=0.41)


def test_tuned_values_in_the_settings_options_and_the_sentence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = params_with(trials=4, seeds=[100, 101])
    arcface, baseline = params.resolve_loss("arcface"), params.resolve_loss("baseline")
    with pytest.raises(LossbenchError, match="tune@arcface"):
        settings_of(params, arcface)
    values = {"train.lr": 0.02, "scale": 12.5}
    write_record(StudyRecord("arcface", list(values), [TrialRow(0, "complete", 0.5, 3, values)], {"values": values}))
    tuned, plain = settings_of(params, arcface), settings_of(params, baseline)
    assert tuned["lr"] == "0.02*" and plain["lr"] == params.resolve_loss("baseline").train.lr
    assert tuned["options"] == "scale=12.5*, margin=0.3, weights_lr_mult=10"
    assert plain["options"] == "—"
    rows = make_rows()
    rows[1] = dataclasses.replace(rows[1], settings=dict(rows[1].settings, lr=tuned["lr"], options=tuned["options"]))
    study = dataclasses.replace(STUDY, tune_trials=4, tune_seeds=2)
    text = to_markdown(rows, study)
    headers, body = md_table(text)
    assert body[1][headers.index("Options")] == tuned["options"] and body[1][headers.index("LR")] == "0.02*"
    sentence = "Tuned: 4 trials per loss on val (objective: val mAP, mean over 2 tuning seeds); * marks a tuned value."
    assert sentence in text and "Hand-set" not in text
    assert sentence in re.search(r"\\caption\{(.*)\}\n", to_latex(rows, study)).group(1)
    hand = to_markdown(make_rows(), dataclasses.replace(STUDY, tune_trials=0))
    assert "Hand-set values (tune.trials: 0).\n" in hand and "Tuned:" not in hand
    assert "Hand-set values (tune.trials: 0)." in to_latex(make_rows(), dataclasses.replace(STUDY, tune_trials=0))
    assert "Tuned:" not in to_markdown(make_rows(), STUDY) and "Hand-set" not in to_markdown(make_rows(), STUDY)


def test_tuning_section_numbers_from_trials_and_train_summaries(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics" / "tuning").mkdir(parents=True)
    (tmp_path / "metrics" / "tuning" / "arcface_center.csv").write_text(
        "number,state,objective,epochs,train.lr\n0,complete,0.2,3,0.01\n1,pruned,,1,0.001\n"
        "2,complete,0.5,3,0.02\n3,complete,0.3,3,0.03\n"
    )
    for seed, value in ((0, 0.40), (1, 0.44), (2, 0.39)):
        summary = tmp_path / "metrics" / "train" / "arcface_center" / f"seed{seed}" / "summary.json"
        summary.parent.mkdir(parents=True)
        summary.write_text(json.dumps({"monitor": "val_mAP", "best_val_mAP": value, "val_mAP": value, "val_top1": 0.9}))
    found = tuning_of("arcface_center", "val_mAP", [0, 1, 2, 3])  # seed 3 has no summary: left out
    assert dataclasses.replace(found, retrained=None) == dataclasses.replace(TUNED, retrained=None)
    assert found.retrained == pytest.approx(0.41)
    assert tuning_of("arcface_center", "val_mAP", [5]).retrained is None
    with pytest.raises(LossbenchError, match="tune@cosface"):
        tuning_of("cosface", "val_mAP", [0])
    study = dataclasses.replace(STUDY, tune_trials=4, tuning=(found,))
    text = to_markdown(make_rows(), study)
    section = text[text.index("**What tuning found**") :]
    assert "| Loss | Trials (complete / pruned) | Best val mAP | Median val mAP | Retrained val mAP |" in section
    assert "| arcface_center | 4 (3 / 1) | 50.0 | 30.0 | 41.0 |" in section  # % with one decimal, as in the table
    assert "val mAP in %" in section and "mean over the 3 training seeds" in section
    records = {r["loss"]: r for r in csv.DictReader(io.StringIO(to_csv(make_rows(), study)))}
    assert [records["arcface_center"][c] for c in ("tune_trials", "tune_complete", "tune_pruned")] == ["4", "3", "1"]
    assert (
        float(records["arcface_center"]["tune_best"]) == 0.5
        and float(records["arcface_center"]["tune_retrained"]) == 0.41
    )
    assert records["clip"]["tune_trials"] == "" and "tune_best" not in to_csv(make_rows(), STUDY)
    assert "What tuning found" not in to_markdown(make_rows(), STUDY)


def test_detectable_differences_and_their_cost_in_the_markdown():
    study = dataclasses.replace(
        STUDY,
        detectable=(Detectable("score", 62.14), Detectable("top1", 0.0532), Detectable("mAP", 0.04)),
        resolve=Resolve("score", 20.0, seeds=28.3, identities_factor=3.21),
    )
    text = to_markdown(make_rows(), study)
    assert (
        "**What this study can detect**: the smallest difference between two losses found with 80% power at the 5% "
        "level (paired, from the variances of this study's typical difference with the best): challenge score 62.1 "
        "points, top-1 accuracy 5.3 percentage points, mAP 4.0 percentage points. To resolve 20.0 points of "
        "challenge score: ≈ 29 seeds per loss at the current 40 test identities, or ≈ 3.2× the test identities "
        "(≈ 129) at 3 seeds." in text
    )
    none = dataclasses.replace(study, resolve=Resolve("score", 20.0, seeds=None, identities_factor=None))
    assert "no number of seeds at the current 40 test identities" in to_markdown(make_rows(), none)
    assert "no number of test identities at 3 seeds" in to_markdown(make_rows(), none)
    enough = dataclasses.replace(study, resolve=Resolve("score", 20.0, seeds=2.1, identities_factor=0.7))
    assert "the current 3 seeds and 40 test identities suffice" in to_markdown(make_rows(), enough)
    assert "What this study can detect" not in to_markdown(make_rows(), STUDY)


def test_detectability_from_summarized_verdicts_meets_its_target():
    """On a simulated study: the MDE is that of the median-SE difference, and at the seeds (or identities) the cost
    helper names, the same multiplier times the rescaled SE equals the target difference."""
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 8.0, 400)
    point, reps = {}, {}
    for name, mu in {"a": 500.0, "b": 480.0, "c": 470.0, "d": 460.0}.items():
        point[name] = mu + rng.normal(0, 6.0, 3)  # seed spread; below: shared, loss-specific and per-run test effects
        reps[name] = point[name][:, None] + shared + rng.normal(0, 4.0, (1, 400)) + rng.normal(0, 2.0, (3, 400))
    verdicts = {key: summarize(point, reps, identities=50) for key in ("score", "top1")}  # the same for both keys
    found, resolve = detectability(verdicts, confidence=0.95, seeds=3)
    assert [d.metric for d in found] == ["score", "top1"]  # mAP has no verdicts here
    typical = sorted((v for v in verdicts["score"].values() if not v.best), key=lambda v: v.se_diff)[1]
    t = scipy_t.ppf(0.975, typical.dof_diff) + scipy_t.ppf(0.8, typical.dof_diff)
    assert found[0].mde == pytest.approx(t * typical.se_diff, rel=1e-12)
    assert found[0].mde > 20.0  # not resolved yet: both ways cost something
    assert resolve.metric == "score" and resolve.delta == 20.0 and resolve.seeds > 3 and resolve.identities_factor > 1
    at_seeds = t * math.sqrt(typical.diff_seed_var * 3 / resolve.seeds + typical.diff_test_var)
    at_ids = t * math.sqrt(typical.diff_seed_var + typical.diff_test_var / resolve.identities_factor)
    assert (at_seeds, at_ids) == pytest.approx((20.0, 20.0), rel=1e-9)
    assert detectability(verdicts, confidence=0.95, seeds=1)[1] is None
