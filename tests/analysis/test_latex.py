"""The generated LaTeX tables compile with pdflatex (Debian texlive-latex-base + -recommended).

Skipped without pdflatex on PATH, unless LSML_REQUIRE_PDFLATEX=1 makes that a failure.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from analysis.collect import collect
from analysis.horizon import horizon_table, k_table, limited_table, steps_to_reach, steps_to_reach_table
from analysis.protocol import selection_gap
from analysis.tables import (accuracy_table, aggregate_table, aggregates, improvement_table, steps_to_95,
                             to_latex)

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
# All a paper needs for these tables: booktabs rules; \textbf and \underline are LaTeX's own.
DOCUMENT = r"""\documentclass{article}
\usepackage{booktabs}
\begin{document}
\input{accuracy.tex}
\input{steps_to_95.tex}
\input{aggregate.tex}
\input{improvement.tex}
\input{selection_gap.tex}
\input{steps_to_reach.tex}
\input{horizon.tex}
\input{accuracy_vs_K.tex}
\input{limited.tex}
\end{document}
"""


def test_tables_compile(tmp_path):
    if shutil.which("pdflatex") is None:
        if os.environ.get("LSML_REQUIRE_PDFLATEX") == "1":
            pytest.fail("pdflatex is not on PATH and LSML_REQUIRE_PDFLATEX=1")
        pytest.skip("pdflatex is not on PATH")
    c = collect(RUNS)
    (tmp_path / "accuracy.tex").write_text(to_latex(accuracy_table(c.runs, "toy")))
    (tmp_path / "steps_to_95.tex").write_text(to_latex(steps_to_95(c.runs, c.curves, "toy")))
    agg, imp = aggregates(c.runs[c.runs["suite"] == "toy"], reps=200)
    (tmp_path / "aggregate.tex").write_text(to_latex(aggregate_table(agg, "toy")))
    (tmp_path / "improvement.tex").write_text(to_latex(improvement_table(imp, "toy", intervals=False)))
    trials = pd.DataFrame({"suite": "toy", "method": ["ours", "ours", "scratch"], "trial": [0, 1, 0],
                           "validation": [0.5, 0.6, 0.3], "target": [0.55, 0.52, 0.3],
                           "selected": [False, True, True]})
    (tmp_path / "selection_gap.tex").write_text(to_latex(selection_gap(trials, "toy")))
    targets = ["toy_e", "toy_f"]
    frame, threshold = steps_to_reach(c.curves, targets, "Reptile", reps=200)
    (tmp_path / "steps_to_reach.tex").write_text(to_latex(steps_to_reach_table(frame, threshold, "Reptile", "toy")))
    (tmp_path / "horizon.tex").write_text(to_latex(horizon_table(c.curves, targets, "toy")))
    (tmp_path / "accuracy_vs_K.tex").write_text(to_latex(k_table(c.runs, "toy")))
    limited = c.runs.assign(train_size=3, accuracy=c.runs["accuracy"] / 2)
    (tmp_path / "limited.tex").write_text(to_latex(limited_table(limited, c.runs, "toy")))
    (tmp_path / "doc.tex").write_text(DOCUMENT)
    out = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "Missing character" not in log and "Undefined control sequence" not in log
