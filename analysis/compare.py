"""The comparison table a local sweep prints at its end: methods x targets, mean ± 95%
t-interval over seeds, from exactly the run folders of the grid (see ``analysis.tables``)."""
from __future__ import annotations

from pathlib import Path

from analysis import tables
from analysis.collect import collect


def comparison(results_dir: Path, run_dirs: list[Path]) -> str:
    done = {p for p in run_dirs if (p / "done").exists()}
    if not done:
        return "no finished runs to compare"
    runs = collect(results_dir, only=done).runs
    parts = []
    for suite in runs["suite"].unique():
        table = tables.accuracy_table(runs[runs["suite"] == suite], suite)
        parts += [table.caption, "", tables.to_markdown(table), ""]
    return "\n".join(parts)
