"""Long-horizon tables (analysis.horizon), checked against curves computed by hand."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.collect import collect
from analysis.horizon import (horizon_table, k_table, limited_table, reach, reference_row, selected_rows,
                              steps_to_reach, steps_to_reach_table)
from analysis.tables import accuracy_table

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
DISPLAY = {"reptile": "Reptile", "ours": "CTS (ours)", "fomaml": "FOMAML", "leap": "Leap"}


def curves(spec: dict[str, dict[int, tuple[list[int], list[float]]]]) -> pd.DataFrame:
    """method -> seed -> (inner steps, accuracy %) as collect's curves frame, one target; the
    last checkpoint is the final phi."""
    rows = []
    for method, seeds in spec.items():
        for seed, (steps, acc) in seeds.items():
            for i, (s, a) in enumerate(zip(steps, acc)):
                rows.append({"method": method, "display": DISPLAY[method], "variant": "", "suite": "s", "seed": seed,
                             "target": "t", "phi_step": "final" if i == len(steps) - 1 else str(s),
                             "inner_steps": s, "accuracy": a / 100})
    return pd.DataFrame(rows)


def test_reach_interpolates_between_checkpoints_and_says_when_it_never_gets_there():
    steps, acc = np.array([100, 200, 400]), np.array([40.0, 50.0, 70.0])
    assert reach(steps, acc, 60.0) == 300.0  # halfway from 50 to 70, halfway from 200 to 400
    assert reach(steps, acc, 50.0) == 200.0  # exactly at a checkpoint
    assert reach(steps, acc, 30.0) == 100.0  # already there at the first checkpoint
    assert reach(steps, acc, 70.5) == math.inf
    assert reach(steps, np.array([40.0, 65.0, 55.0]), 60.0) == pytest.approx(180.0)  # the first crossing counts


STEPS = [100, 200, 400]
SPEC = {
    "reptile": {0: (STEPS, [30, 50, 60]), 1: (STEPS, [30, 50, 60])},  # threshold 60, reached at 400
    "ours": {0: (STEPS, [40, 60, 70]), 1: (STEPS, [40, 50, 80])},  # seeds reach at 200 and 266.67
    "fomaml": {0: (STEPS, [20, 30, 40]), 1: (STEPS, [20, 30, 40])},  # never
    "leap": {0: (STEPS, [40, 60, 70]), 1: (STEPS, [10, 20, 30])},  # one seed reaches, the mean never
}


def test_steps_to_reach_and_its_bootstrap_interval_by_hand():
    frame, threshold = steps_to_reach(curves(SPEC), ["t"], "Reptile", reps=2000)
    assert threshold == pytest.approx(60.0)
    got = frame.set_index("method")
    # Reptile's two seeds agree: the threshold never moves and Reptile reaches it at its end.
    assert got.loc["Reptile", ["steps", "lo", "hi", "speedup", "speedup_lo", "speedup_hi"]].tolist() == \
        pytest.approx([400, 400, 400, 1, 1, 1])
    # CTS's mean curve is 40, 55, 75: 60 is a quarter of the way from 55 to 75, so 200 + 50 = 250.
    # Resamples of its two seeds are {0,0} (200), {0,1} (250) and {1,1} (200 + 200/3), a quarter
    # of the mass at each end: the 2.5% and 97.5% percentiles are the single-seed values.
    assert got.loc["CTS (ours)", "steps"] == pytest.approx(250.0)
    assert got.loc["CTS (ours)", ["lo", "hi"]].tolist() == pytest.approx([200.0, 200 + 200 / 3])
    assert got.loc["CTS (ours)", "speedup"] == pytest.approx(400 / 250)
    assert got.loc["CTS (ours)", ["speedup_lo", "speedup_hi"]].tolist() == pytest.approx([400 / (200 + 200 / 3), 2.0])
    assert got.loc["FOMAML", ["steps", "lo", "hi", "speedup", "speedup_hi"]].tolist() == [math.inf] * 3 + [0, 0]
    # Leap: its mean (25, 40, 50) never gets there; the {0,0} resamples (a quarter) do, at 200.
    assert got.loc["Leap", ["steps", "lo", "hi"]].tolist() == [math.inf, 200.0, math.inf]
    assert got.loc["Leap", ["speedup", "speedup_lo", "speedup_hi"]].tolist() == pytest.approx([0, 0, 2.0])
    assert got["seeds"].tolist() == [2, 2, 2, 2]

    table = steps_to_reach_table(frame, threshold, "Reptile", "s")
    assert table.cells.loc["CTS (ours)"].tolist() == ["250 [200, 267]", "1.60 [1.50, 2.00]", "2"]
    assert table.cells.loc["FOMAML"].tolist() == ["not reached", "0", "2"]
    assert table.cells.loc["Leap", "Inner steps [95% CI]"] == "not reached [200, not reached]"
    assert "60.0% (Reptile's final mean)" in table.caption


def test_a_noisy_reference_moves_the_threshold_in_every_resample():
    spec = {"reptile": {0: (STEPS, [30, 50, 50]), 1: (STEPS, [30, 50, 70])},  # threshold 60 (50 or 70 per seed)
            "ours": {0: (STEPS, [40, 60, 70]), 1: (STEPS, [40, 60, 70])}}
    frame, threshold = steps_to_reach(curves(spec), ["t"], "Reptile", reps=2000)
    ours = frame.set_index("method").loc["CTS (ours)"]
    assert threshold == pytest.approx(60.0) and ours["steps"] == pytest.approx(200.0)
    # thresholds 50 ({0,0}: halfway from 40 to 60, at 150), 60 (200), 70 ({1,1}: 400)
    assert [ours["lo"], ours["hi"]] == pytest.approx([150.0, 400.0])


def test_the_reference_is_reptiles_selected_configuration_when_it_has_several():
    runs = pd.DataFrame({"method": ["reptile"] * 2 + ["ours"], "display": ["Reptile"] * 2 + ["CTS (ours)"],
                         "variant": ["K=10", "K=50", ""], "method.reset_every": [10, 50, 100]})
    rows = ["Reptile, K=10", "Reptile, K=50", "CTS (ours)"]
    assert reference_row(rows, runs, {"method.reset_every": "50"}) == "Reptile, K=50"
    assert reference_row(rows, runs) == "Reptile, K=10"  # no selection known: the first
    assert reference_row(["CTS (ours)"], runs) is None


def test_horizon_table_reads_fractions_of_the_horizon_off_the_curve():
    spec = {"reptile": {0: ([100, 400, 2000, 4000], [10, 20, 30, 40]), 1: ([100, 400, 2000, 4000], [20, 30, 40, 50])},
            "ours": {0: ([200, 400, 4000], [10, 20, 30]), 1: ([200, 400, 4000], [10, 20, 30])}}
    table = horizon_table(curves(spec), ["t"], "s", fractions=(0.025, 0.05, 0.1, 1.0))
    # Reptile: 100 and 400 are checkpoints; 200 is a third of the way from 100 to 400.
    # two seeds 10 apart: sd 10/sqrt(2), half-width t(0.975, 1) * sd / sqrt(2) = 12.706 * 5 = 63.5
    assert table.cells.loc["Reptile"].tolist() == ["15.0 ± 63.5", "18.3 ± 63.5", "25.0 ± 63.5", "45.0 ± 63.5",
                                                    "4,000", "2"]
    assert table.cells.loc["CTS (ours)", "2.5%"] == "--"  # 100 steps: before its first checkpoint
    assert table.cells.loc["CTS (ours)", "10%"] == "20.0 ± 0.0"


def test_k_table_sets_each_k_beside_the_accuracy_table():
    runs = collect(RUNS).runs
    table = k_table(runs, "toy")
    accuracy = accuracy_table(runs, "toy").cells
    assert list(table.cells.columns) == ["CTS (ours)"] and list(table.cells.index) == ["K=5", "K=10"]
    assert table.cells.loc["K=5", "CTS (ours)"] == accuracy.loc["CTS (ours), K=5", "Mean"]
    assert table.cells.loc["K=10", "CTS (ours)"] == accuracy.loc["CTS (ours), K=10", "Mean"]
    assert k_table(runs[runs["method"] != "ours"], "toy") is None


def test_with_a_k_study_the_k_table_has_one_column_through_its_points_each_at_its_beta():
    """The study's points (each K at its own tuned beta) make the method's one column, with the
    beta beside each cell; the main selection, at another beta, is not a K point."""
    lines = []
    for k, beta, acc in ((100, 0.08, 0.9), (10, 0.2, 0.5), (100, 0.05, 0.6), (1000, 0.01, 0.4)):
        for seed, shift in ((0, 0.0), (1, 0.02)):
            lines.append({"method": "ours", "display": "CTS (ours)", "variant": f"K={k}, meta_lr={beta}",
                          "suite": "s", "seed": seed, "target": "t", "accuracy": acc + shift,
                          "method.reset_every": k, "method.meta_lr": beta})
    runs = pd.DataFrame(lines)
    study = {"ours": {10: ["method.meta_lr=0.2", "method.reset_every=10"],
                      100: ["method.meta_lr=0.05", "method.reset_every=100"],
                      1000: ["method.meta_lr=0.01", "method.reset_every=1000"]}}
    table = k_table(runs, "s", study)
    assert list(table.cells.columns) == ["CTS (ours), each K at its own beta"]
    assert list(table.cells.index) == ["K=10", "K=100", "K=1000"]
    # seeds 60 and 62: mean 61, half-width t(0.975, 1) x 1 = 12.706
    assert table.cells.loc["K=100"].iloc[0] == "61.0 ± 12.7 (β 0.05)"
    assert table.cells.loc["K=10"].iloc[0] == "51.0 ± 12.7 (β 0.2)"


def test_limited_table_means_over_targets_per_size_beside_the_full_set():
    base = {"method": "ours", "display": "CTS (ours)", "variant": "", "suite": "s"}
    runs = pd.DataFrame([{**base, "seed": s, "target": t, "accuracy": a}
                         for s, t, a in ((0, "a", 0.8), (0, "b", 0.6), (1, "a", 0.9), (1, "b", 0.7))])
    limited = pd.DataFrame([{**base, "seed": s, "target": t, "train_size": n, "accuracy": a}
                            for s, t, n, a in ((0, "a", 1, 0.2), (0, "b", 1, 0.4), (1, "a", 1, 0.3), (1, "b", 1, 0.5),
                                               (0, "a", 3, 0.5), (0, "b", 3, 0.5), (1, "a", 3, 0.6), (1, "b", 3, 0.6))])
    table = limited_table(limited, runs, "s")
    assert list(table.cells.columns) == ["1 per class", "3 per class", "All"]
    # means over targets per seed: size 1: 30, 40; size 3: 50, 60; all: 70, 80
    assert table.cells.loc["CTS (ours)"].tolist() == ["35.0 ± 63.5", "55.0 ± 63.5", "75.0 ± 63.5"]
    assert limited_table(limited.iloc[:0], runs, "s") is None


def test_reptile_always_reaches_its_own_final_accuracy_whatever_the_float_sums():
    """The threshold is the mean curve's last point itself: a mean of the final accuracies
    taken in another order can land one bit above it, and Reptile would 'not reach' itself
    (draw 6 of these did, before)."""
    for draw in range(12):
        acc = np.random.default_rng(draw).uniform(40, 80, size=(10, 3))
        spec = {"reptile": {s: (STEPS, list(acc[s])) for s in range(10)}}
        frame, _ = steps_to_reach(curves(spec), ["t"], "Reptile", reps=20)
        assert frame.loc[0, "steps"] <= 400.0, draw


def test_a_row_meta_tested_at_its_final_phi_only_has_no_curve():
    spec = {**SPEC, "leap": {0: ([400], [70]), 1: ([400], [80])}}  # a K study's variant, final phi only
    frame, _ = steps_to_reach(curves(spec), ["t"], "Reptile", reps=50)
    assert "Leap" not in set(frame["method"])
    assert "Leap" not in horizon_table(curves(spec), ["t"], "s").cells.index
    scratch = curves({"reptile": SPEC["reptile"], "fomaml": {0: ([0], [20]), 1: ([0], [22])}})
    assert "FOMAML" in horizon_table(scratch, ["t"], "s").cells.index  # nothing meta-trained: a level, kept


def test_without_a_selection_the_reference_is_the_reptile_row_with_the_most_checkpoints():
    runs = pd.DataFrame({"method": ["reptile"] * 2, "display": ["Reptile"] * 2, "variant": ["K=10", "K=50"],
                         "method.reset_every": [10, 50]})
    rows = {"Reptile, K=10": pd.DataFrame([[1.0, 2.0]], columns=[100, 400]),
            "Reptile, K=50": pd.DataFrame([[1.0, 2.0, 3.0]], columns=[100, 200, 400])}
    assert reference_row(rows, runs) == "Reptile, K=50"
    assert reference_row(rows, runs, {"method.reset_every": "10", "method.meta_lr": "1.0"}) == "Reptile, K=10"


def test_selected_rows_keep_each_method_at_its_selection_and_the_rest_whole():
    runs = pd.DataFrame({"method": ["ours"] * 3 + ["reptile"] * 2 + ["fomaml"],
                         "display": ["CTS (ours)"] * 3 + ["Reptile"] * 2 + ["FOMAML"],
                         "variant": ["K=10", "K=100", "K=1000", "K=10", "K=50", ""],
                         "method.reset_every": [10, 100, 1000, 10, 50, 100],
                         "method.meta_lr": [0.1, 0.1, 0.1, 1.0, 1.0, 0.46]})
    overrides = {"ours": ["method.meta_lr=0.1", "method.reset_every=100"],
                 "reptile": ["method.meta_lr=1.0", "method.reset_every=50", "method.inner_steps=3"],  # not a column
                 "fomaml": ["method.reset_every=200"]}  # one row: kept whatever it says
    assert selected_rows(runs, overrides) == {"CTS (ours), K=100", "Reptile, K=50", "FOMAML"}
    # no selection known, or none matching: every row of that method stays
    assert selected_rows(runs, {}) == set(runs["display"] + ", " + runs["variant"]) - {"FOMAML, "} | {"FOMAML"}
    assert selected_rows(runs, {"ours": ["method.reset_every=7"]}) >= {"CTS (ours), K=10", "CTS (ours), K=1000"}
