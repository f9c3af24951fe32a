"""``python -m benchmark.sweep <grid> [launcher=local|slurm] [--status] [overrides...]``: run a grid.

A grid (see ``benchmark/sweeps/grid.py``) is a YAML in ``benchmark/conf/grid/`` (give its name),
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
import subprocess
import sys

from benchmark import logs
from benchmark.sweeps import launchers
from benchmark.sweeps.grid import (GridError, check_selected, compose_runs, config_dir_override, expand, grid_names,
                                   load_grid)
from benchmark.sweeps.launchers import LaunchError
from benchmark.sweeps.settings import ROOT
from benchmark.sweeps.states import LAUNCH, counts, print_status, run_here, state, submit

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
                        *(str(r.dir.path.resolve()) for r in runs)], cwd=ROOT, check=False)
        return code
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
