"""Per-task-step cost of a multi-process run against one process, on this machine.

Runs the same config with ``runner.world_size=1`` and ``=W`` (interleaved, each a
``python -m benchmark.run`` in a fresh results folder, threads = cores / W per process)
and prints, per repeat, the meta-training wall time per task-step of each (the loop
only: no start-up, no meta-test) and their ratio, then the median ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmark.perf import check_counts


def wall_per_task_step(overrides: list[str], world_size: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "benchmark.run", *overrides, f"runner.world_size={world_size}",
                        f"results_dir={tmp}", "metatest.steps=1"], check=True, capture_output=True)
        (summary,) = Path(tmp).rglob("summary.json")
        s = json.loads(summary.read_text())
        return s["wall_seconds"] / s["inner_steps"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default: %(default)s)")
    parser.add_argument("--world-size", type=int, default=2, metavar="W",
                        help="processes of the run compared with one process (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, as for python -m benchmark.run (e.g. suite=toy train.steps=50)")
    args = parser.parse_intermixed_args(argv)
    check_counts(parser, args, ("repeats", "world_size"))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides, repeats, w = args.overrides, args.repeats, args.world_size
    ratios = []
    for i in range(repeats):
        one, many = wall_per_task_step(overrides, 1), wall_per_task_step(overrides, w)
        ratios.append(many / one)
        print(f"repeat {i}: W=1 {1e3 * one:.2f} ms/task-step, W={w} {1e3 * many:.2f} ms/task-step, "
              f"ratio {many / one:.3f}", flush=True)
    print(f"W={w} / W=1 per task-step: median {statistics.median(ratios):.3f} over {repeats} repeats")


if __name__ == "__main__":
    main()
