"""The state of each run of a sweep (done, running, failed, ...), a status table, and starting
the runs that need it, here or as SLURM job arrays (``benchmark.sweep`` and ``benchmark.tune``)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from benchmark.runtime.execute import EXIT_DIVERGED
from benchmark.runtime.storage import RunDir
from benchmark.signals import StopRequest
from benchmark.sweeps import launchers
from benchmark.sweeps.grid import Run
from benchmark.sweeps.settings import LocalSettings, SlurmSettings

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
