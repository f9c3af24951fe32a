"""Table values, marks and rendering, checked by hand against tests/fixtures/make_runs.py.

Accuracies in percent (seeds 0, 1, 2); t(0.975, 2) = 4.303, t(0.975, 1) = 12.706.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

import pytest

from analysis.collect import collect
from analysis.tables import accuracy_table, steps_to_95, to_latex, to_markdown

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


@pytest.fixture(scope="module")
def collection():
    return collect(RUNS)


@pytest.fixture(scope="module")
def table(collection):
    return accuracy_table(collection.runs, "toy")


def test_rows_in_registry_order_with_variants(table):
    assert list(table.cells.index) == [
        "CTS (ours), K=5", "CTS (ours), K=10", "Reptile", "FOMAML", "Scratch", "newmethod"]
    assert list(table.cells.columns) == ["toy_e", "toy_f", "Mean", "n"]


def test_mean_and_interval_strings(table):
    c = table.cells
    # 80, 82, 84: mean 82.0, sd 2.0, hw = 4.303 * 2 / sqrt(3) = 4.97
    assert c.loc["CTS (ours), K=10", "toy_e"] == "82.0 ± 5.0"
    # 70, 74, 72: mean 72.0, sd 2.0, hw 4.97
    assert c.loc["CTS (ours), K=10", "toy_f"] == "72.0 ± 5.0"
    # per-seed means over targets 75, 78, 78: mean 77.0, sd 1.732, hw = 4.303 * 1.732 / 1.732 = 4.30
    assert c.loc["CTS (ours), K=10", "Mean"] == "77.0 ± 4.3"
    # 78, 81, 81: mean 80.0, sd 1.732, hw 4.30
    assert c.loc["CTS (ours), K=5", "toy_e"] == "80.0 ± 4.3"
    # per-seed means 69, 71.5, 72.5: mean 71.0, sd 1.803, hw = 4.303 * 1.803 / 1.732 = 4.48
    assert c.loc["CTS (ours), K=5", "Mean"] == "71.0 ± 4.5"
    # 73, 75, 74: mean 74.0, sd 1.0, hw = 4.303 / 1.732 = 2.48
    assert c.loc["Reptile", "toy_f"] == "74.0 ± 2.5"
    # 40, 45, 50: mean 45.0, sd 5, hw = 4.303 * 5 / 1.732 = 12.42;  50, 50, 50: hw 0
    assert c.loc["Scratch", "toy_e"] == "45.0 ± 12.4"
    assert c.loc["Scratch", "toy_f"] == "50.0 ± 0.0"
    # 60, 70 (two seeds): mean 65.0, sd 7.071, hw = 12.706 * 7.071 / 1.414 = 63.53
    assert c.loc["FOMAML", "toy_e"] == "65.0 ± 63.5"


def test_n_column_and_single_seed(table):
    assert list(table.cells["n"]) == ["3", "3", "3", "2", "3", "1"]
    assert list(table.cells.loc["newmethod", ["toy_e", "toy_f", "Mean"]]) == ["55.0 (n=1)", "65.0 (n=1)", "60.0 (n=1)"]


def test_missing_cells_are_shown(table):
    # FOMAML has no toy_f runs: its toy_f and its Mean (over all targets) are "--", not dropped
    assert table.cells.loc["FOMAML", "toy_f"] == "--"
    assert table.cells.loc["FOMAML", "Mean"] == "--"
    assert not table.bold.loc["FOMAML", "toy_f"] and not table.underline.loc["FOMAML", "toy_f"]


def test_bold_is_best_mean_per_column(table):
    bold = {col: list(table.bold.index[table.bold[col]]) for col in table.bold.columns}
    assert bold == {"toy_e": ["CTS (ours), K=10"], "toy_f": ["Reptile"], "Mean": ["CTS (ours), K=10"], "n": []}


def test_underline_is_paired_t_test_against_best(table):
    under = {col: list(table.underline.index[table.underline[col]]) for col in table.underline.columns}
    # toy_e, best ours K=10 (80, 82, 84):
    #   ours K=5 (78, 81, 81): differences 2, 1, 3 -> t = 3.46, df 2, p = 0.074 -> underlined
    #   Reptile (70, 74, 75): differences 10, 8, 9 -> t = 15.6, p = 0.004 -> not
    #   FOMAML (60, 70) paired on seeds 0, 1: differences 20, 12 -> t = 4.0, df 1, p = 0.156 -> underlined
    #   newmethod: one common seed, no test -> not underlined
    # toy_f, best Reptile (73, 75, 74): ours K=10 (70, 74, 72): differences 3, 1, 2 -> p = 0.074 -> underlined
    # Mean, best ours K=10 (75, 78, 78): Reptile (71.5, 74.5, 74.5) is a constant 3.5 below -> p = 0 -> not
    assert under == {"toy_e": ["CTS (ours), K=5", "FOMAML"], "toy_f": ["CTS (ours), K=10"], "Mean": [], "n": []}


def test_markdown_marks(table):
    md = to_markdown(table)
    assert "| CTS (ours), K=10 | **82.0 ± 5.0** | <u>72.0 ± 5.0</u> | **77.0 ± 4.3** | 3 |" in md
    assert "| FOMAML | <u>65.0 ± 63.5</u> | -- | -- | 2 |" in md


def test_latex_marks_and_escaping(table):
    tex = to_latex(table)
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"toy\_e & toy\_f" in tex  # underscores escaped
    assert r"CTS (ours), K=10 & \textbf{82.0 $\pm$ 5.0} & \underline{72.0 $\pm$ 5.0}" in tex
    assert r"\caption{" in tex and r"\label{tab:accuracy-toy}" in tex
    assert "paired t-test over seeds, p $<$ 0.05" in tex
    assert "±" not in tex  # math \pm: no text-companion fonts needed


def test_steps_to_95(collection):
    steps = steps_to_95(collection.runs, collection.curves, "toy")
    col = "Inner steps to 95%"
    # best final mean: ours K=10, 77.0; threshold 0.95 * 77.0 = 73.15.
    # ours K=10 reaches 77.0 * 0.97 = 74.7 at phi step 15 = 60 inner steps (at step 10: 69.3)
    # Reptile's intermediate curve peaks at 73.5 * 0.9 = 66.2; its final 73.5 counts, at 80
    assert steps.cells[col].to_dict() == {
        "CTS (ours), K=5": "not reached", "CTS (ours), K=10": "60", "Reptile": "80",
        "FOMAML": "--", "Scratch": "not reached", "newmethod": "not reached"}
    assert steps.cells.loc["Reptile", "Final mean (%)"] == "73.5"
    assert "threshold 73.1%" in steps.caption and "77.0% by CTS (ours), K=10" in steps.caption


def test_episode_cells_take_the_interval_over_seeds_and_over_episodes_for_one_seed():
    """Two seeds of 2 episodes, accuracies [0.5, 0.7] and [0.8, 1.0]. Pooled, as one seed's
    episodes would be: the mean of the four, 0.75, and 1.96 sd / sqrt(4), sd (ddof 1) =
    sqrt(0.13 / 3). The cell, over seeds: the seeds' means 0.6 and 0.9, so 0.75 and
    t(0.975, 1) * sd([0.6, 0.9]) / sqrt(2) = 12.706 * 0.15 = 1.906 (episode noise alone would
    hide the seed-to-seed spread). One seed: its episodes' interval."""
    import math

    from analysis.tables import episode_cell, episodes_tables, pooled

    sd = math.sqrt(0.02)  # of [0.5, 0.7] and of [0.8, 1.0]
    base = {"method": "ours", "display": "CTS (ours)", "variant": "", "suite": "toy", "target": "toy_e", "ways": 5,
            "shots": 1, "queries": 15, "episodes": 2, "body": "frozen", "episode_steps": 100, "episode_lr": 0.01,
            "sd": sd, "ci95": 1.96 * sd / math.sqrt(2)}
    df = pd.DataFrame([{**base, "seed": 0, "accuracy": 0.6}, {**base, "seed": 1, "accuracy": 0.9}])
    mean, half, n = pooled(df)
    assert (mean, n) == (pytest.approx(0.75), 4)
    assert half == pytest.approx(1.96 * math.sqrt(0.13 / 3) / 2)
    assert episode_cell(df) == (pytest.approx(0.75), pytest.approx(12.7062 * 0.15, rel=1e-4))
    assert episode_cell(df[df["seed"] == 0]) == (pytest.approx(0.6), pytest.approx(1.96 * sd / math.sqrt(2)))
    (table,) = episodes_tables(df, "toy")
    assert table.cells.loc["CTS (ours)", "toy_e, 1-shot"] == "75.0 ± 190.6"
    assert table.cells.loc["CTS (ours)", "n"] == "2" and "5-way" in table.caption
    assert "t-interval over the row's n seeds" in table.caption
