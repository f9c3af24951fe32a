"""``python -m benchmark.sweep <grid> [launcher=local|slurm] [--status] [overrides...]``: run a grid.

A grid (see ``benchmark/grid.py``) is a YAML in ``benchmark/conf/grid/`` (give its name),
any YAML (give its path), or ``-`` (axes from the command line only). On the command line, ``key=a,b,c`` (or any Hydra sweep: ``range(0,5)``, ``choice(...)``)
is an axis and ``key=value`` an override for every run; either replaces the grid's axis
of the same key. ``slurm.<key>=`` and ``local.<key>=`` set the launchers;
``hparams=<results_dir>/selected/<suite>`` runs each method at its tuned configuration
(``benchmark.tune``).

Examples::

    python -m benchmark.sweep core                       # here, as many runs at once as cores allow
    python -m benchmark.sweep core launcher=slurm slurm.partition=gpu
    python -m benchmark.sweep - method=ours,reptile seed=0,1 suite=toy
    python -m benchmark.sweep core --status
    python -m benchmark.sweep core hparams=results/selected/glyphs seed=0,1,2,3,4
    python -m benchmark.sweep - --config-dir my_conf suite=birds method=ours,reptile   # a suite file

Every run is composed and validated before anything starts, so a bad key fails the
whole sweep, naming the key. A run folder is named by a hash of its config and a run
whose folder has ``done`` never runs again: re-running a sweep runs (or submits) only
what is missing or failed, and an interrupted run resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from benchmark import launchers, logs
from benchmark.grid import (GridError, check_selected, compose_runs, config_dir_override, expand, grid_names,
                            load_grid)
from benchmark.launchers import LaunchError, LocalSettings, Run, SlurmSettings
from benchmark.run import EXIT_DIVERGED
from benchmark.storage import RunDir, StopRequest

LAUNCH = ("missing", "failed", "stopped", "resumable")  # the states a sweep (re)starts; each resumes if it can


# ---------------------------------------------------------------- states
def state(run: Run, queue: dict[str, str] | None) -> tuple[str, str]:
    """(state, detail) of a run from its folder, its lock and its launchers' records.

    done; diverged (stopped on a non-finite loss or phi: never rerun); running (a live
    process holds the run's lock, or its SLURM job is queued or running); submitted (a
    recorded job, but squeue is not available to ask); stopped (a sweep started it and a
    signal stopped it after a checkpoint, as its log's last line says: it resumes); failed
    (a sweep started it and nothing runs it now: it restarts, from its checkpoint if it has
    one); resumable (a checkpoint and no live holder, whatever started it: the next sweep
    resumes it); missing. A damaged folder is named, never a crash."""
    folder = run.dir
    if folder.done:
        return "done", ""
    if folder.diverged:
        return "diverged", _diverged_detail(folder)
    if folder.locked():
        return "running", "a live process holds the run's lock"
    owner = launchers.slurm_owner(run, queue)
    if owner:
        return "running", owner
    record = launchers.records(run.results_dir).get(folder.id)
    if record and queue is None:
        return "submitted", f"job {record['job_id']}"
    step = folder.checkpoint_step()
    if step is not None:
        resumes = f"resumes from step {step}"
    elif any((folder.checkpoints / name).exists() for name in folder.POINTERS):
        resumes = f"damaged checkpoint pointer in {folder.checkpoints}: restarts from step 0"
    else:
        resumes = ""
    log = failure_log(run)
    if log:
        stopped = step is not None and StopRequest.STOPPED in launchers.log_tail(log, 3)
        return ("stopped" if stopped else "failed"), resumes
    if resumes:
        return "resumable", resumes
    return "missing", ""


def _diverged_detail(folder: RunDir) -> str:
    try:
        where = folder.summary()["diverged"]
        task = f" on {where['task']}" if where.get("task") else ""
        return f"non-finite {where.get('what', 'loss')} at {where['stage']} step {where['step']}{task}"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{folder.path / 'summary.json'} unreadable ({type(e).__name__})"


def failure_log(run: Run) -> Path | None:
    """The newest log a sweep left for this run (local output or SLURM stderr); None if
    no sweep ever started it."""
    record = launchers.records(run.results_dir).get(run.dir.id)
    logs = [launchers.log_path(run), *([Path(record["stderr"])] if record else [])]
    existing = [p for p in logs if p.exists()]
    if existing:
        return max(existing, key=lambda p: p.stat().st_mtime)
    return logs[-1] if record else None  # a job that died before writing its log


def table(runs: list[Run], columns: dict[str, list]) -> str:
    frame = pd.DataFrame([{**r.axes, "run_id": r.dir.id} for r in runs]).assign(**columns)
    return frame.to_string(index=False)


def print_status(runs: list[Run]) -> None:
    queue = launchers.squeue()
    states = [state(r, queue) for r in runs]
    print(table(runs, {"state": [s for s, _ in states], "detail": [d for _, d in states]}))
    print(counts([s for s, _ in states]))
    for run, (s, _) in zip(runs, states):
        if s == "failed":
            log = failure_log(run)
            print(f"\n--- failed: {run.label} ({run.dir.path}), log {log}:")
            print(launchers.log_tail(log))


def counts(states: list[str]) -> str:
    return f"{len(states)} runs: " + ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(sorted(states)))


# ---------------------------------------------------------------- SLURM jobs
# ---------------------------------------------------------------- command line
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmark.sweep", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("grid", help=f"a grid name ({', '.join(grid_names())}), a YAML path, or - (none)")
    parser.add_argument("overrides", nargs="*", help="key=value, key=a,b (an axis), launcher=local|slurm, "
                                                     "slurm.<key>=value, local.<key>=value")
    parser.add_argument("--status", action="store_true", help="print the state of every run and start nothing")
    parser.add_argument("--config-dir", "-cd", metavar="DIR", help="a config directory with your own suite "
                        "files (DIR/suite/<name>.yaml, then suite=<name>), as benchmark.run --config-dir")
    args = parser.parse_intermixed_args(argv)
    launcher = [o for o in args.overrides if o.startswith("launcher=")]
    args.overrides = [o for o in args.overrides if not o.startswith("launcher=")]
    args.launcher = launcher[-1].partition("=")[2] if launcher else "local"
    if args.launcher not in ("local", "slurm"):
        parser.error(f"launcher: {args.launcher!r} is not one of local, slurm")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        logs.setup(logs.level_from(args.overrides))
        extra = [config_dir_override(args.config_dir)] if args.config_dir else []
        grid = load_grid(args.grid, [*extra, *args.overrides])
        runs = compose_runs(expand(grid))
        check_selected(grid, runs)
    except (GridError, ValueError) as e:  # ValueError: a bad log.level
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.status:
        print_status(runs)
        return 0

    queue = launchers.squeue()
    states = [state(r, queue)[0] for r in runs]
    todo = [r for r, s in zip(runs, states) if s in LAUNCH]
    verb = "submit" if args.launcher == "slurm" else "run here"
    print(f"{counts(states)}; {len(todo)} to {verb}")
    try:
        if args.launcher == "slurm":
            return submit(todo, grid.slurm)
        code = run_here(todo, grid.local)
        print()
        sys.stdout.flush()
        subprocess.run([sys.executable, "-m", "analysis.compare", str(runs[0].results_dir.resolve()),
                        *(str(r.dir.path.resolve()) for r in runs)], cwd=launchers.ROOT, check=False)
        return code
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def submit(runs: list[Run], slurm: SlurmSettings) -> int:
    job_ids = launchers.submit_slurm(runs, slurm, launchers.RunJob(os.getcwd()))
    if job_ids:
        print(table(runs, {"job_id": [job_ids[r.dir.id] for r in runs]}))
        arrays = sorted({j.split("_")[0] for j in job_ids.values()})
        print(f"submitted {len(job_ids)} runs as job array(s) {', '.join(arrays)}; "
              f"logs in {runs[0].results_dir / '.submitit'}; follow with --status")
    return 0


def run_here(runs: list[Run], local: LocalSettings) -> int:
    if not runs:
        return 0
    try:
        outcomes = launchers.run_local(runs, local)
    except KeyboardInterrupt:
        return 130
    ran = [o.run for o in outcomes]
    print(table(ran, {"result": [o.result for o in outcomes], "seconds": [round(o.seconds, 1) for o in outcomes]}))
    failed = [o for o in outcomes if o.failed]
    diverged = [o for o in outcomes if o.diverged]
    for o in [*failed, *diverged]:
        print(f"\n--- {o.result}: {o.run.label}, log {launchers.log_path(o.run)}:")
        print(launchers.log_tail(launchers.log_path(o.run)))
    ok = len(outcomes) - len(failed) - len(diverged)
    print(f"{ok} of {len(outcomes)} runs ok" + (f", {len(diverged)} diverged" if diverged else "")
          + f"; logs in {runs[0].results_dir / 'logs'}")
    return 1 if failed else EXIT_DIVERGED if diverged else 0


if __name__ == "__main__":
    sys.exit(main())
