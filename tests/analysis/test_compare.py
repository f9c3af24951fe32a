"""The table a local sweep prints at its end, over the fixture's run folders."""
from __future__ import annotations

import shutil
from pathlib import Path

from analysis.compare import comparison

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
LINE = "toy/ours/7b786325a4cc: ours seed 0 diverged at meta-train step 13 on toy_b (loss)"


def test_comparison_lists_diverged_runs_and_survives_unreadable_ones(tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(RUNS, root)
    fine, diverged = root / "toy/ours/60cc4897a620", root / "toy/ours/7b786325a4cc"
    text = comparison(root, [fine, diverged])
    assert "| CTS (ours) | **80.0 (n=1)** | **70.0 (n=1)** | **75.0 (n=1)** | 1 |" in text
    assert f"diverged: {LINE}" in text
    # the grid's only finished run no longer parses: a sentence, not a KeyError
    (fine / "summary.json").write_text("{")
    text = comparison(root, [fine, diverged])
    assert "no finished runs to compare" in text
    assert "unreadable: toy/ours/60cc4897a620/summary.json: Expecting" in text and f"diverged: {LINE}" in text
