"""Where the runs of a sweep execute: processes on this machine, or SLURM job arrays.

Whether a run is live is decided by its lock (``RunDir.locked``: an flock that
the kernel drops when its holder dies), whoever started it: a sweep, a hand-started
``benchmark.run``, a SLURM job. Each launcher also leaves a record next to the results,
for the logs and for jobs still waiting in a queue:

- local: ``<results_dir>/logs/<run-id>.log`` holds the run's output (appended, one
  header line per attempt);
- SLURM: ``<results_dir>/.submitit/submitted.json`` maps run id -> job id and log
  paths; ``squeue`` says whether that job is still queued or running.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import submitit
from tqdm import tqdm

from benchmark import atomic, logs
from benchmark.compose import compose_config
from benchmark.config import cores
from benchmark.runtime.execute import EXIT_BUSY, EXIT_DIVERGED, execute, print_table
from benchmark.sweeps.grid import Run
from benchmark.sweeps.settings import ROOT, LocalSettings, SlurmSettings

log = logging.getLogger("lsml")
# A child of a local sweep is one whole run, never a rank of the sweep's own launcher.
RANK_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS")


class LaunchError(RuntimeError):
    """A launcher cannot start (e.g. launcher=slurm where there is no SLURM); nothing was submitted."""


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log as a terminal shows them (a tqdm bar redraws with ``\\r``)."""
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_bytes().decode(errors="replace")  # not read_text: it turns each \r into a line
    rows = [row.rstrip("\r").rsplit("\r", 1)[-1] for row in text.split("\n")]
    return "\n".join([r for r in rows if r.strip()][-lines:])


# ---------------------------------------------------------------- local processes
@dataclass
class Outcome:
    run: Run
    result: str  # done | diverged | failed (exit N) | skipped: <why>
    seconds: float

    @property
    def failed(self) -> bool:
        return self.result.startswith("failed")

    @property
    def diverged(self) -> bool:
        return self.result == "diverged"


def log_path(run: Run) -> Path:
    return run.results_dir / "logs" / f"{run.dir.id}.log"


def _start(run: Run) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log_path(run).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path(run), "a") as log:
        log.write(f"=== {now()} {socket.gethostname()}: python -m benchmark.run {shlex.join(run.overrides)}\n")
        log.flush()
        # A session of its own: Ctrl-C reaches the sweep only, which then asks each run
        # to stop with SIGTERM, so the run writes a resumable checkpoint first.
        proc = subprocess.Popen([sys.executable, "-m", "benchmark.run", *run.overrides], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    return proc


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_local(runs: list[Run], settings: LocalSettings) -> list[Outcome]:
    """Run each run as a ``python -m benchmark.run`` process, ``jobs`` at a time.

    A failing run does not stop the others. Ctrl-C (or SIGTERM) stops every run at a
    step boundary with a resumable checkpoint; the next sweep resumes them."""
    if problem := next(filter(None, (r.dir.path_problem() for r in runs)), None):  # before any run starts
        raise LaunchError(problem)
    jobs = settings.jobs or max(1, cores() // max([r.cores for r in runs], default=1))
    queue, active, outcomes = deque(runs), {}, []
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tqdm(total=len(runs), desc=f"runs ({jobs} at a time)", unit="run", dynamic_ncols=True) as bar:
            while queue or active:
                while queue and len(active) < jobs:
                    run = queue.popleft()
                    if run.dir.finished or run.dir.locked():  # another process got there first
                        outcomes.append(Outcome(run, "skipped: finished or running elsewhere", 0.0))
                        bar.update()
                        continue
                    active[_start(run)] = (run, time.monotonic())
                for proc in [p for p in active if p.poll() is not None]:
                    run, started = active.pop(proc)
                    result = _result(proc.returncode, run)
                    outcomes.append(Outcome(run, result, time.monotonic() - started))
                    bar.write(f"{result}: {run.label} ({outcomes[-1].seconds:.0f} s)")
                    bar.update()
                time.sleep(0.1)
    except KeyboardInterrupt:
        _stop(active)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return outcomes


def _result(code: int, run: Run) -> str:
    """done | diverged | skipped: running elsewhere | failed (exit N), from a run's exit code."""
    if code == 0 and run.dir.done:
        return "done"
    if code == EXIT_DIVERGED and run.dir.diverged:
        return "diverged"
    if code == EXIT_BUSY:  # it lost the race for the lock to a process started meanwhile
        return "skipped: running elsewhere"
    return f"failed (exit {code})"


def _stop(active: dict[subprocess.Popen, tuple[Run, float]], grace_s: float = 60.0) -> None:
    for proc in active:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc, (run, _) in active.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.warning(f"stopped {len(active)} runs; they resume from their last checkpoint next time")


# ---------------------------------------------------------------- SLURM job arrays
class RunJob(submitit.helpers.Checkpointable):
    """One run as a SLURM job: each of its tasks is one rank (``execute`` reads SLURM_PROCID).

    On SIGUSR2 (time limit, preemption) the runner finishes its step, writes a
    resumable checkpoint and hands the signal to submitit, which calls
    :meth:`checkpoint` and requeues the job; the requeued job runs ``__call__`` again
    and ``execute`` resumes from that checkpoint. A plain ``scontrol requeue`` (SIGTERM)
    takes the same path without submitit."""

    def __init__(self, cwd: str):
        self.cwd = cwd

    def __call__(self, overrides: list[str]) -> str:
        os.chdir(self.cwd)  # relative paths (results_dir, data.root) mean what they meant at submission
        cfg = compose_config(overrides)
        logs.setup(cfg.log.level)  # "resuming ... from step N" and warnings reach the job's stderr
        run = execute(cfg, progress=False)
        if run.done and os.environ.get("SLURM_PROCID", "0") == "0":
            print_table(run)
        return str(run.path)

    def checkpoint(self, overrides: list[str]) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self, overrides)


def records_path(results_dir: Path) -> Path:
    return results_dir / ".submitit" / "submitted.json"


def records(results_dir: Path) -> dict[str, dict]:
    """run id -> {job_id, stdout, stderr, submitted} of the last submission of each run."""
    path = records_path(results_dir)
    return json.loads(path.read_text()) if path.exists() else {}


def submit_slurm(runs: list[Run], settings: SlurmSettings, job: Callable[[list[str]], str]) -> dict[str, str]:
    """Submit ``job(run.overrides)`` for each run as one job array per results dir and world
    size (one array needs one shape), record the job ids and return at once: run id -> job id."""
    if not runs:
        return {}
    groups: dict[tuple[Path, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.results_dir, run.world_size), []).append(run)
    job_ids = {}
    for (results_dir, world_size), group in groups.items():
        executor = submitit.AutoExecutor(folder=results_dir / ".submitit" / "%j",
                                         slurm_max_num_timeout=settings.max_num_timeout)
        if executor.cluster != "slurm":
            raise LaunchError("launcher=slurm: no SLURM here (sbatch not found); use launcher=local")
        executor.update_parameters(**settings.executor_parameters(world_size))
        try:
            jobs = executor.map_array(job, [run.overrides for run in group])
        except submitit.core.utils.FailedJobError as e:  # sbatch refused: bad partition, no controller...
            raise LaunchError(f"sbatch failed, {len(group)} runs not submitted:\n{e}") from None
        new = {run.dir.id: {"job_id": j.job_id, "stdout": str(j.paths.stdout), "stderr": str(j.paths.stderr),
                            "submitted": now(), "overrides": run.overrides} for run, j in zip(group, jobs)}
        atomic.write_json(records_path(results_dir), records(results_dir) | new)
        job_ids |= {run_id: r["job_id"] for run_id, r in new.items()}
    return job_ids


def squeue() -> dict[str, str] | None:
    """job id -> state (PENDING, RUNNING...) of every job SLURM holds; None without SLURM.

    ``-r`` lists each task of an array on its own line, as ``<array id>_<index>``."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode:
        return None
    return dict(line.split(maxsplit=1) for line in out.stdout.splitlines() if line.strip())


def slurm_owner(run: Run, queue: dict[str, str] | None) -> str | None:
    """"job 12_3 RUNNING" if the run's last submitted job is still queued or running."""
    record = records(run.results_dir).get(run.dir.id)
    if record is None or queue is None or record["job_id"] not in queue:
        return None
    return f"job {record['job_id']} {queue[record['job_id']]}"
