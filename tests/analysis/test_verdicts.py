"""Verdicts by rule: hand-computed paired differences, p-values and decisions.

t(0.975, 2) = 4.303; a paired t statistic of 10 / (1 / sqrt 3) = 17.32 on 2 degrees of
freedom has p = 0.0033."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.stats import probability_of_improvement
from analysis.tables import scores
from analysis.verdicts import decide, pairs, table, verdicts

DISPLAY = {"ours": "CTS (ours)", "reptile": "Reptile", "fomaml_pp": "FOMAML++", "multitask": "Multi-task"}


def runs(per_method: dict[str, list[tuple[float, float]]], k: dict[str, int] | None = None) -> pd.DataFrame:
    """One line per (method, seed, target); ``per_method``: per seed, accuracies on targets e and f."""
    lines = []
    for key, seeds in per_method.items():
        method, _, variant = key.partition("@")
        for seed, (e, f) in enumerate(seeds):
            for target, acc in (("e", e), ("f", f)):
                lines.append({"method": method, "display": DISPLAY[method], "variant": variant or None,
                              "seed": seed, "target": target, "accuracy": acc,
                              "method.reset_every": (k or {}).get(key, 100)})
    return pd.DataFrame(lines)


def test_the_paired_difference_p_and_decision_match_hand_computation():
    frame = runs({"ours": [(0.70, 0.70), (0.72, 0.72), (0.74, 0.74)],
                  "reptile": [(0.60, 0.60), (0.61, 0.61), (0.65, 0.65)],
                  "multitask": [(0.71, 0.69), (0.70, 0.73), (0.75, 0.74)]})
    imp = probability_of_improvement(scores(frame), reps=500)
    chosen = {"CTS (ours)", "Reptile", "Multi-task"}
    assert pairs(frame, chosen) == [("CTS (ours)", "Reptile"), ("CTS (ours)", "Multi-task")]
    got = verdicts(frame, imp, pairs(frame, chosen)).set_index("y")
    rep = got.loc["Reptile"]
    # per-seed differences 10, 11, 9 points: mean 10, sd 1, half-width 4.303 / sqrt(3) = 2.484
    assert rep["n"] == 3 and rep["difference"] == pytest.approx(10.0)
    assert rep["difference_hw"] == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert rep["p"] == pytest.approx(0.0033, abs=2e-4)
    assert rep["p_improvement"] == 1.0 and rep["decision"] == "CTS (ours) ahead"
    # Against multi-task: seed means 70 vs 70, 72 vs 71.5, 74 vs 74.5: differences 0, 0.5, -0.5.
    mt = got.loc["Multi-task"]
    assert mt["difference"] == pytest.approx(0.0, abs=1e-9) and mt["decision"] == "not separated"
    md = table(verdicts(frame, imp, pairs(frame, chosen)), "toy")
    assert md.cells.loc["CTS (ours) vs Reptile", "Verdict"] == "CTS (ours) ahead"
    assert md.cells.loc["CTS (ours) vs Reptile", "X - Y (points)"] == "+10.0 ± 2.5"


def test_ahead_needs_both_the_paired_test_and_an_improvement_interval_off_one_half():
    assert decide("X", "Y", 2.0, 0.01, 0.6, 0.9) == "X ahead"
    assert decide("X", "Y", -2.0, 0.01, 0.1, 0.4) == "Y ahead"
    assert decide("X", "Y", 2.0, 0.06, 0.6, 0.9) == "not separated"  # the test fails
    assert decide("X", "Y", 2.0, 0.01, 0.45, 0.9) == "not separated"  # P(X > Y) may be 0.5
    assert decide("X", "Y", -2.0, 0.01, 0.6, 0.9) == "not separated"  # the two disagree
    assert decide("X", "Y", math.nan, math.nan, math.nan, math.nan) == "not separated"


def test_pairs_cover_cts_fomaml_pp_against_reptile_and_each_k_pair():
    frame = runs({"ours@K=10": [(0.5, 0.5)] * 2, "ours@K=100": [(0.6, 0.6)] * 2,
                  "reptile": [(0.4, 0.4)] * 2, "fomaml_pp": [(0.45, 0.45)] * 2},
                 k={"ours@K=10": 10, "ours@K=100": 100})
    chosen = {"CTS (ours), K=100", "Reptile", "FOMAML++"}
    assert pairs(frame, chosen) == [("CTS (ours), K=100", "Reptile"), ("CTS (ours), K=100", "FOMAML++"),
                                    ("FOMAML++", "Reptile"), ("CTS (ours), K=10", "CTS (ours), K=100")]


def test_with_a_k_study_the_k_pairs_are_its_own_configurations_not_the_main_selection():
    """The K study tunes beta at each K; its pairs compare those points only. The main selection
    (here K=100 at beta 0.08) shares a K with the study's K=100 (at beta 0.05): no pair of the
    two, and no pair between rows of one K."""
    lines = []
    for label, (k, beta, acc) in {"main": (100, 0.08, 0.6), "k10": (10, 0.2, 0.5), "k100": (100, 0.05, 0.55),
                                  "k1000": (1000, 0.01, 0.4)}.items():
        for seed in range(2):
            for target in ("e", "f"):
                lines.append({"method": "ours", "display": "CTS (ours)", "variant": f"K={k}, meta_lr={beta}",
                              "seed": seed, "target": target, "accuracy": acc,
                              "method.reset_every": k, "method.meta_lr": beta})
    frame = pd.DataFrame(lines)
    study = {"ours": {10: ["method.meta_lr=0.2", "method.reset_every=10"],
                      100: ["method.meta_lr=0.05", "method.reset_every=100"],
                      1000: ["method.meta_lr=0.01", "method.reset_every=1000"]}}
    chosen = {"CTS (ours), K=100, meta_lr=0.08"}
    k10, k100, k1000 = (f"CTS (ours), K={k}, meta_lr={b}" for k, b in ((10, 0.2), (100, 0.05), (1000, 0.01)))
    assert pairs(frame, chosen, study) == [(k10, k100), (k10, k1000), (k100, k1000)]
    # Without the study: every two rows that differ in K, never two rows of one K.
    main = "CTS (ours), K=100, meta_lr=0.08"
    assert pairs(frame, chosen) == [(k10, main), (k10, k100), (k10, k1000), (main, k1000), (k100, k1000)]
    assert pairs(frame, chosen, study, k_pairs=False) == []  # (CTS alone: nothing else to judge)


def test_a_k_study_of_cts_and_reptile_pairs_the_two_at_each_k():
    """Each K of the study, both methods at the beta tuned for that K: the matched comparison."""
    lines = []
    for method, display, points in (("ours", "CTS (ours)", ((10, 0.2), (100, 0.03))),
                                    ("reptile", "Reptile", ((10, 0.15), (100, 1.6), (200, 1.3)))):
        for k, beta in points:
            for seed in range(2):
                lines.append({"method": method, "display": display, "variant": f"K={k}, meta_lr={beta}", "seed": seed,
                              "target": "e", "accuracy": 0.5, "method.reset_every": k, "method.meta_lr": beta})
    frame = pd.DataFrame(lines)
    study = {"ours": {10: ["method.meta_lr=0.2", "method.reset_every=10"],
                      100: ["method.meta_lr=0.03", "method.reset_every=100"]},
             "reptile": {10: ["method.meta_lr=0.15", "method.reset_every=10"],
                         100: ["method.meta_lr=1.6", "method.reset_every=100"]}}
    chosen = {"CTS (ours), K=100, meta_lr=0.03", "Reptile, K=200, meta_lr=1.3"}
    got = pairs(frame, chosen, study)
    assert got[-2:] == [("CTS (ours), K=10, meta_lr=0.2", "Reptile, K=10, meta_lr=0.15"),
                        ("CTS (ours), K=100, meta_lr=0.03", "Reptile, K=100, meta_lr=1.6")]
    assert len(got) == len(set(got))  # CTS K=100 is also the selection here: no pair twice


def test_limited_data_verdicts_judge_the_same_pairs_size_by_size():
    """With n training images per target class, the claims' pairs (not the K study's) are judged
    again at each n, from the limited rows; the full set's rows say "all"."""
    from analysis.verdicts import limited_verdicts

    frame = runs({"ours": [(0.70, 0.70), (0.72, 0.72), (0.74, 0.74)],
                  "reptile": [(0.60, 0.60), (0.61, 0.61), (0.65, 0.65)]})
    small = pd.concat([frame.assign(train_size=1, accuracy=frame["accuracy"] - 0.3),  # the same gaps, 30 points lower
                       frame.assign(train_size=3, accuracy=frame["accuracy"].where(frame["method"] == "ours", 0.72))])
    wanted = pairs(frame, {"CTS (ours)", "Reptile"})
    got = limited_verdicts(small, wanted, reps=200)
    assert got["images_per_class"].tolist() == [1, 3]
    one, three = got.iloc[0], got.iloc[1]
    assert one["difference"] == pytest.approx(10.0) and one["p"] == pytest.approx(0.0033, abs=2e-4)
    assert one["decision"] == "CTS (ours) ahead"
    # At 3 per class Reptile has 72 on every seed: differences -2, 0, +2, not separated.
    assert three["difference"] == pytest.approx(0.0, abs=1e-9) and three["decision"] == "not separated"
    md = table(got, "toy")
    assert list(md.cells.index) == ["CTS (ours) vs Reptile, 1 per class", "CTS (ours) vs Reptile, 3 per class"]
    assert limited_verdicts(small.iloc[:0], wanted).empty


def test_a_report_without_pairs_gets_an_empty_verdict_table_not_a_crash():
    """A folder of one method (a user's first run) has no pair to judge."""
    from analysis.tables import to_markdown

    frame = runs({"ours": [(0.7, 0.7), (0.72, 0.72)]})
    imp = probability_of_improvement(scores(frame), reps=50)
    found = verdicts(frame, imp, pairs(frame, {"CTS (ours)"}))
    assert found.empty
    assert to_markdown(table(found, "toy"), corner="X vs Y").startswith("| X vs Y | Seeds |")
