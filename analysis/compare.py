"""The comparison table a local sweep prints at its end: methods x targets, mean ± 95%
t-interval over seeds, from exactly the run folders of the grid (see ``analysis.tables``),
then the grid's diverged and unreadable runs, which the table leaves out.

    python -m analysis.compare <results dir> [<run folder> ...]   # all runs when none is named

The sweep calls it as a command, so the runner's package never imports analysis.
"""
from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.compare", description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="the results directory the run folders lie under")
    parser.add_argument("runs", type=Path, nargs="*", help="run folders to compare (default: every one)")
    args = parser.parse_args(argv)
    runs = args.runs or [p.parent for p in args.results.rglob("config.yaml")]
    print(comparison(args.results, runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
