"""The comparison table a local sweep prints at its end: methods x targets, mean ± 95%
t-interval over seeds, from exactly the run folders of the grid (see ``analysis.tables``),
then the grid's diverged and unreadable runs, which the table leaves out."""
from __future__ import annotations

from pathlib import Path

from analysis import tables
from analysis.collect import collect


def comparison(results_dir: Path, run_dirs: list[Path]) -> str:
    collection = collect(results_dir, only=set(run_dirs))
    runs, parts = collection.runs, []
    for suite in runs["suite"].unique() if not runs.empty else []:
        table = tables.accuracy_table(runs[runs["suite"] == suite], suite)
        parts += [table.caption, "", tables.to_markdown(table), ""]
    parts = parts or ["no finished runs to compare", ""]
    parts += [f"diverged: {line}" for line in collection.diverged]
    parts += [f"unreadable: {problem}" for problem in collection.unreadable]
    return "\n".join(parts).rstrip("\n")
