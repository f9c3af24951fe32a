"""``python -m benchmark.tune [method=a,b] [trials=N] [seeds=[100,101]] [overrides...]``: an equal-budget search.

Every method gets the same number of ``trials``, each a distinct configuration drawn from
the search space declared beside its config (``methods.search``): the first points of a
scrambled Sobol sequence, a repeat skipped, seeded by the suite, the method and every
setting that changes what the tune measures (``benchmark.sweeps.selection.experiment``: the
horizon, the model, the sources, the validation tasks...; never the targets, the seeds or a
path). So a tune at another horizon draws fresh configurations, and changing the targets
changes nothing. A reset period K is drawn from a ladder capped at half the horizon. No
trial is hand-picked: ``include_default=true`` makes trial 0 today's default, and the
selection file says so. Each trial runs once per tuning seed as an ordinary run folder,
through the sweep machinery: done runs are skipped, interrupted ones resume, and
``launcher=slurm`` submits one job array. Keys every method shares (inner optimizer, batch
size, steps) are never tuned, so every method gets the same inner compute.

A tuned key given on the command line is held fixed and the others are tuned (a K study:
``method=ours method.reset_every=1000``); the selection is then written to
``<method>@reset_every=1000.yaml`` and the main ``<method>.yaml`` is left alone.

A trial's score is the mean over the tuning seeds of ``validation_mean``: the accuracy of
the final phi on the suite's validation tasks (``suite.validation``), which are neither
trained on nor reported. Target accuracy is never read. Once all of a method's trials
have finished, ``<results_dir>/selected/<suite>/<label>.yaml`` records the best trial, the
winner's seed-to-seed spread and margin to the runner-up ("not separated" when the margin is
inside the spread), and any edge of its range it sits on (see ``benchmark.sweeps.selection``);
run the same command again after a SLURM submission to write it. A diverged trial scores
nothing and is never selected; that includes a run whose phi trained but whose meta-test of
a target diverged (the run folder then records no accuracy at all, as every diverged run),
the one way a target can touch selection: it can veto a trial, never rank one. If every
trial of a method diverged, nothing is selected and the tune exits 3.

Tuning seeds must be disjoint from the report seeds 0..report_seeds-1 (default 5): the
runs that are reported never took part in choosing their configuration.

Examples::

    python -m benchmark.tune method=ours,reptile trials=12 seeds=[100,101]
    python -m benchmark.tune trials=8 runner.threads=1 results_dir=results/protocol   # every method
    python -m benchmark.tune method=ours,reptile method.reset_every=1000 trials=4 train.steps=2000   # a K study
    python -m benchmark.tune trials=8 launcher=slurm
    python -m benchmark.tune trials=8 --status
    python -m benchmark.tune --config-dir my_conf suite=birds method=ours trials=4   # a suite file
    python -m benchmark.sweep core hparams=results/selected/glyphs seed=0,1,2,3,4      # then: report seeds
"""
from __future__ import annotations

import argparse
import sys

from benchmark import logs
from benchmark.runtime.execute import EXIT_CONFIG, EXIT_DIVERGED
from benchmark.sweeps.grid import GridError, config_dir_override, unique_runs
from benchmark.sweeps.launchers import LaunchError, squeue
from benchmark.sweeps.states import LAUNCH, counts, print_status, run_here, state, submit
from benchmark.sweeps.tuning import (DEFAULT_REPORT_SEEDS, DEFAULT_SEEDS, DEFAULT_TRIALS, TUNE_KEYS, TuneError, plan,
                                     report, trials_of)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.tune", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=(
        f"method=a,b (default: every registered method); trials=N configurations per method (default "
        f"{DEFAULT_TRIALS}); seeds=[s,...] tuning seeds (default {list(DEFAULT_SEEDS)}); report_seeds=S: "
        f"seeds 0..S-1 are reserved for reporting (default {DEFAULT_REPORT_SEEDS}); launcher=local|slurm; "
        "include_default=true: trial 0 is today's default (off: every trial is a draw); "
        "slurm.<key>=, local.<key>=; a tuned key (e.g. method.reset_every=1000) is held fixed; any other "
        "key=value is a run override for every trial"))
    parser.add_argument("--status", action="store_true", help="print every trial's runs and scores; start nothing")
    parser.add_argument("--config-dir", "-cd", metavar="DIR", help="a config directory with your own suite "
                        "files (DIR/suite/<name>.yaml, then suite=<name>), as benchmark.run --config-dir")
    args = parser.parse_intermixed_args(argv)
    args.options, args.run_overrides = {}, []
    for text in args.overrides:
        key, eq, value = text.partition("=")
        if eq and key in TUNE_KEYS:
            args.options[key] = value
        else:
            args.run_overrides.append(text)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    launcher = args.options.get("launcher", "local")
    try:
        if launcher not in ("local", "slurm"):
            raise TuneError(f"launcher: {launcher!r} is not one of local, slurm")
        try:
            logs.setup(logs.level_from(args.run_overrides))
        except ValueError as e:
            raise TuneError(str(e)) from None
        extra = [config_dir_override(args.config_dir)] if args.config_dir else []
        request, runs, grid = plan(args.options, [*extra, *args.run_overrides])
    except (TuneError, GridError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    unique = unique_runs(runs)
    if args.status:
        print_status(unique)
        report(request, trials_of(request, runs), write=False)
        return 0
    queue = squeue()
    states = [state(r, queue)[0] for r in unique]
    todo = [r for r, s in zip(unique, states) if s in LAUNCH]
    print(f"tune of {', '.join(request.methods)} on {request.suite}: {request.trials} trials x seeds "
          f"{request.seeds}; {counts(states)}; {len(todo)} to "
          f"{'submit' if launcher == 'slurm' else 'run here'}")
    try:
        if launcher == "slurm":
            code = submit(todo, grid.slurm)
        else:
            code = run_here(todo, grid.local)
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    waiting, failed = report(request, trials_of(request, runs), write=True)
    if waiting:
        print(f"\nnot selected yet (unfinished trials): {', '.join(waiting)}; run this command again when they finish")
    if failed:
        print(f"\nnothing selected for {', '.join(failed)}: every trial diverged", file=sys.stderr)
    if code in (1, 130):  # a run failed, or the tune was interrupted
        return code
    return EXIT_DIVERGED if failed else 0  # a diverged trial is a result of the search; all diverged is not


if __name__ == "__main__":
    sys.exit(main())
