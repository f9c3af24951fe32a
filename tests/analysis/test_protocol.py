"""The protocol paragraph and the selection gap of a report with a K study: the study's tunes
(K held) are their own experiment, with their own budget, named as such."""
from __future__ import annotations

import pandas as pd

from analysis.protocol import paragraph, selection_gap

COMMON = {"tuning_seeds": [100, 101], "criterion": "validation mean", "validation_tasks": ["v"],
          "include_default": False, "spread": 0.01, "margin": 0.02, "separated": True, "runner_up": 1, "edges": [],
          "score": 0.7, "trial": 0}


def entry(method: str, trials: int, fixed: dict | None = None) -> dict:
    space = {"method.meta_lr": "log-uniform [0.001, 10]"}
    if not fixed:
        space["method.reset_every"] = "choice {10, 100, 1000}"
    return {**COMMON, "method": method, "fixed": fixed or {}, "trials": trials, "distinct_configurations": trials,
            "search_space": space, "overrides": ["method.meta_lr=0.1", "method.reset_every=100"]}


def test_a_k_study_tune_has_its_own_budget_and_is_named_with_its_held_k():
    protocol = {"s": {"ours": entry("ours", 8), "reptile": entry("reptile", 8),
                      "ours@reset_every=10": entry("ours", 4, {"method.reset_every": 10}),
                      "reptile@reset_every=10": entry("reptile", 4, {"method.reset_every": 10})}}
    text = "\n".join(paragraph(protocol, "s", [0, 1]))
    assert "UNEQUAL" not in text
    assert "every method got the same 8 trials" in text
    assert "the K study's tunes (K held, only the meta step size drawn) got 4 trials each" in text
    assert "| CTS (ours) (reset_every=10 held) | 4 (4) |" in text
    # Unequal study budgets are said, as unequal main budgets are.
    protocol["s"]["reptile@reset_every=10"]["trials"] = 3
    assert "UNEQUAL K-study budgets (ours@reset_every=10: 4, reptile@reset_every=10: 3)" in "\n".join(
        paragraph(protocol, "s", [0, 1]))

    trials = pd.DataFrame([{"suite": "s", "method": m, "trial": t, "selected": t == 0, "target": 0.5 + t / 10}
                           for m in ("ours", "ours@reset_every=10") for t in range(2)])
    gap = selection_gap(trials, "s")
    assert list(gap.cells.index) == ["CTS (ours)", "CTS (ours) (reset_every=10 held)"]
    assert gap.cells.loc["CTS (ours) (reset_every=10 held)", "Gap (points)"] == "10.0"


def test_the_sensitivity_figure_takes_the_main_tune_not_the_k_study():
    """A K study's trials hold K: against K they are one column of points, and their names
    ("ours@reset_every=10") have no colour of their own; the figure draws the main tune."""
    from analysis.protocol import main_tune

    trials = pd.DataFrame({"suite": "s", "method": ["ours", "ours", "ours@reset_every=10", "reptile@reset_every=1000"],
                           "trial": [0, 1, 0, 0]})
    assert main_tune(trials)["method"].tolist() == ["ours", "ours"]
