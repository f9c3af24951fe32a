"""``python -m benchmark.sweep <grid> [launcher=local|slurm] [--status] [overrides...]``: run a grid.

A grid is a YAML in ``benchmark/conf/grid/`` (give its name), any YAML (give its path),
or ``-`` (axes from the command line only)::

    axes:                 # the runs are the cartesian product of these
      method: [ours, reptile]
      seed: [0, 1, 2]
    overrides: []         # applied to every run
    per_method:           # applied to the runs of one method
      reptile: ["method.reset_every=100"]
    slurm: {partition: debug, time_min: 60}   # see launchers.SlurmSettings
    local: {jobs: 0}                          # see launchers.LocalSettings

On the command line, ``key=a,b,c`` (or any Hydra sweep: ``range(0,5)``, ``choice(...)``)
is an axis and ``key=value`` an override for every run; either replaces the grid's axis
of the same key. ``slurm.<key>=`` and ``local.<key>=`` set the launchers.

Examples::

    python -m benchmark.sweep core                       # here, as many runs at once as cores allow
    python -m benchmark.sweep core launcher=slurm slurm.partition=gpu
    python -m benchmark.sweep - method=ours,reptile seed=0,1 suite=toy
    python -m benchmark.sweep core --status

Every run is composed and validated before anything starts, so a bad key fails the
whole sweep, naming the key. A run folder is named by a hash of its config and a run
whose folder has ``done`` never runs again: re-running a sweep runs (or submits) only
what is missing or failed, and an interrupted run resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import re
import sys
from pathlib import Path

import pandas as pd
import yaml
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from analysis.compare import comparison
from benchmark import launchers
from benchmark.config import compose_config, validate
from benchmark.launchers import LaunchError, LocalSettings, Run, SlurmSettings
from benchmark.run import EXIT_DIVERGED
from benchmark.storage import RunDir
from methods.base import METHODS

GRID_DIR = Path(__file__).resolve().parent / "conf" / "grid"
GRID_KEYS = ("axes", "overrides", "per_method", "slurm", "local")
LAUNCH = ("missing", "failed", "resumable")  # the states a sweep (re)starts; each resumes if it can
PLAIN = re.compile(r"[\w.:/+-]+")  # values that need no quotes in a Hydra override


class SweepError(ValueError):
    """A bad grid or override: nothing was run or submitted."""


@dataclasses.dataclass
class Grid:
    """A grid YAML merged with the command line: what :func:`expand` turns into runs."""

    axes: dict[str, list[str]]  # key -> values, each as Hydra override text
    overrides: list[str]  # for every run, applied first
    per_method: dict[str, list[str]]
    slurm: SlurmSettings
    local: LocalSettings
    cli: list[str] = dataclasses.field(default_factory=list)  # command-line overrides, applied last


# ---------------------------------------------------------------- grids
def override_text(value) -> str:
    """A YAML value as Hydra override syntax: ``[a,b]``, ``null``, ``'a b'``..."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_text(v)}" for k, v in value.items()) + "}"
    text = str(value)
    return text if PLAIN.fullmatch(text) else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def grid_names() -> list[str]:
    return sorted(p.stem for p in GRID_DIR.glob("*.yaml"))


def read_grid(spec: str) -> dict:
    """The grid's YAML as a dict: ``-`` (empty), a name in conf/grid/, or a path."""
    if spec == "-":
        return {}
    path = Path(spec) if spec.endswith((".yaml", ".yml")) or os.sep in spec else GRID_DIR / f"{spec}.yaml"
    if not path.exists():
        raise SweepError(f"grid {spec!r}: no such file {path}; grids: {', '.join(grid_names())}, or a path, or -")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise SweepError(f"grid {spec!r}: unknown key {unknown[0]!r}; valid: {', '.join(GRID_KEYS)}")
    return data


def settings(cls, block: dict | None, overrides: dict[str, str], prefix: str):
    """A launcher's settings: the grid's block, then the command line; a wrong key is named."""
    fields = {f.name for f in dataclasses.fields(cls)}
    merged = {**(block or {}), **{k: yaml.safe_load(v) for k, v in overrides.items()}}
    for key in merged:
        if key not in fields:
            raise SweepError(f"{prefix}.{key}: unknown key; valid: {', '.join(sorted(fields))}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), merged))
    except OmegaConfBaseException as e:
        raise SweepError(f"{prefix}.{getattr(e, 'full_key', '')}: {str(e).splitlines()[0]}") from None
    except ValueError as e:
        raise SweepError(str(e).splitlines()[0]) from None


def load_grid(spec: str, cli: list[str]) -> Grid:
    """The grid ``spec`` with the command line's axes, overrides and launcher settings."""
    data = read_grid(spec)
    axes = {}
    for key, values in (data.get("axes") or {}).items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"axes.{key}: must be a non-empty list, got {values!r}")
        axes[key] = [override_text(v) for v in values]
    per_method = {m: list(ovs) for m, ovs in (data.get("per_method") or {}).items()}
    for name in per_method:
        if name not in METHODS:
            raise SweepError(f"per_method.{name}: unknown method; valid: {', '.join(METHODS.names())}")
    fixed = list(data.get("overrides") or [])
    for text in [*fixed, *(o for ovs in per_method.values() for o in ovs)]:
        if _parse(text).is_sweep_override():
            raise SweepError(f"{text!r}: a sweep in fixed overrides; make it an axis")

    launcher_args, rest = {"slurm": {}, "local": {}}, []
    for text in cli:
        head, _, value = text.partition("=")
        prefix, _, key = head.partition(".")
        if prefix in launcher_args and key:
            launcher_args[prefix][key] = value
            continue
        override = _parse(text)
        for key in [k for k in axes if k.lstrip("+~") == _key(override)]:
            del axes[key]  # the command line wins over the grid's axis
        if override.is_sweep_override():
            rest = [r for r in rest if _key(_parse(r)) != _key(override)]  # ... and over an earlier value
            axes[override.get_key_element()] = list(override.sweep_string_iterator())
        else:
            rest.append(text)
    return Grid(axes, fixed, per_method, settings(SlurmSettings, data.get("slurm"), launcher_args["slurm"], "slurm"),
                settings(LocalSettings, data.get("local"), launcher_args["local"], "local"), rest)


def _parse(text: str):
    try:
        return OverridesParser.create().parse_override(text)
    except HydraException as e:
        raise SweepError(f"{text!r}: {str(e).splitlines()[0]}") from None


def _key(override) -> str:
    return override.get_key_element().lstrip("+~")


def dedupe(overrides: list[str]) -> list[str]:
    """One override per key, the last one given, in first-given order."""
    last = {_key(_parse(o)): o for o in overrides}
    return list(last.values())


def expand(grid: Grid) -> list[tuple[dict[str, str], list[str]]]:
    """Every point of the grid: (its axis values, its overrides).

    Order, later winning: the grid's overrides, its per-method ones, the point's axis
    values, the command line's overrides."""
    points = []
    for values in itertools.product(*grid.axes.values()):
        point = dict(zip(grid.axes, values))
        axis_overrides = [f"{k}={v}" for k, v in point.items()]
        method = dict(_split(o) for o in [*grid.overrides, *axis_overrides, *grid.cli]).get("method")
        if method is None and grid.per_method:
            method = compose_config([*grid.overrides, *axis_overrides, *grid.cli]).method.name
        per_method = grid.per_method.get(method, [])
        points.append(({k.lstrip("+~"): v for k, v in point.items()},
                       dedupe([*grid.overrides, *per_method, *axis_overrides, *grid.cli])))
    return points


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


# ---------------------------------------------------------------- configs
def compose_runs(points: list[tuple[dict[str, str], list[str]]]) -> list[Run]:
    """Compose and validate every point before anything runs; a failure names its key.

    Points that name the same run folder (they differ only in keys that do not change
    results, e.g. runner.threads) are one run."""
    runs, errors, seen = [], {}, set()
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        for axes, overrides in points:
            try:
                cfg = validate(compose("config", overrides=overrides))
            except (HydraException, OmegaConfBaseException, ValueError) as e:
                message = str(e).split("\nConfig search path")[0].strip()
                errors.setdefault(message, []).append(" ".join(f"{k}={v}" for k, v in axes.items()))
                continue
            run = RunDir(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
            if run.id not in seen:
                seen.add(run.id)
                runs.append(Run(overrides, axes, run))
    if errors:
        text = "\n".join(f"{msg}\n  (in {len(pts)} of {len(points)} runs, e.g. {pts[0] or 'the only run'})"
                         for msg, pts in errors.items())
        raise SweepError(f"invalid runs, nothing was started:\n{text}")
    return runs


# ---------------------------------------------------------------- states
def state(run: Run, queue: dict[str, str] | None) -> tuple[str, str]:
    """(state, detail) of a run from its folder, its lock and its launchers' records.

    done; diverged (stopped on a non-finite loss or phi: never rerun); running (a live
    process holds the run's lock, or its SLURM job is queued or running); submitted (a
    recorded job, but squeue is not available to ask); failed (a sweep started it and
    nothing runs it now: it restarts, from its checkpoint if it has one); resumable (a
    checkpoint and no live holder, whatever started it: the next sweep resumes it);
    missing. A damaged folder is named, never a crash."""
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
    if failure_log(run):
        return "failed", resumes
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
        grid = load_grid(args.grid, args.overrides)
        runs = compose_runs(expand(grid))
    except SweepError as e:
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
        print("\n" + comparison(runs[0].results_dir, [r.dir.path for r in runs]))
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
