"""Per-task-step cost of a multi-process run against one process, on this machine.

    python -m benchmark.scaling [repeats=3] [world_size=2] [key=value ...]

Runs the same config with ``runner.world_size=1`` and ``=W`` (interleaved, each in a
fresh results folder, threads = cores / W per process) and prints the median ratio
of meta-training wall time per task-step (the loop only: no start-up, no meta-test).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def wall_per_task_step(overrides: list[str], world_size: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "benchmark.run", *overrides, f"runner.world_size={world_size}",
                        f"results_dir={tmp}", "metatest.steps=1"], check=True, capture_output=True)
        (summary,) = Path(tmp).rglob("summary.json")
        s = json.loads(summary.read_text())
        return s["wall_seconds"] / s["inner_steps"]


def main(argv: list[str]) -> None:
    opts = {k: v for k, v in (a.split("=", 1) for a in argv) if k in ("repeats", "world_size")}
    overrides = [a for a in argv if a.split("=", 1)[0] not in opts]
    repeats, w = int(opts.get("repeats", 3)), int(opts.get("world_size", 2))
    ratios = []
    for i in range(repeats):
        one, many = wall_per_task_step(overrides, 1), wall_per_task_step(overrides, w)
        ratios.append(many / one)
        print(f"repeat {i}: W=1 {1e3 * one:.2f} ms/task-step, W={w} {1e3 * many:.2f} ms/task-step, "
              f"ratio {many / one:.3f}", flush=True)
    print(f"W={w} / W=1 per task-step: median {statistics.median(ratios):.3f} over {repeats} repeats")


if __name__ == "__main__":
    main(sys.argv[1:])
