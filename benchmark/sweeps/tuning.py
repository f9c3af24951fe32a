"""The tune's machinery: a request's trials x seeds as runs, and each method's selection from
their scores. ``python -m benchmark.tune`` (its docstring states the protocol) is the command."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.compose import compose_config
from benchmark.config import SEED_MAX
from benchmark.runtime.storage import UnreadableSummary
from benchmark.sweeps import selection
from benchmark.sweeps.grid import Grid, GridError, Run, compose_points, dedupe, hydra_message, load_grid, override_text
from benchmark.sweeps.selection import Trial
from methods.base import METHODS
from methods.search import describe, draws, edges, reasons, resolve

DEFAULT_TRIALS = 8
DEFAULT_SEEDS = (100, 101)
DEFAULT_REPORT_SEEDS = 5
TUNE_KEYS = ("method", "trials", "seeds", "report_seeds", "launcher", "include_default")


class TuneError(ValueError):
    """A bad tune request: nothing was run."""


@dataclass
class Request:
    """A validated tune: what runs, and what its selection files record."""

    methods: list[str]
    trials: int
    seeds: list[int]  # tuning seeds
    suite: str
    validation: list[str]  # the suite's validation tasks
    results_dir: Path
    shared: list[str]  # the overrides every trial shares
    drawn: dict[str, list[list[str]]]  # method -> per trial, its tuned keys as key=value
    include_default: bool = False  # trial 0 is today's default, not a draw
    fixed: dict[str, dict[str, object]] = None  # method -> tuned keys the command line holds (method.<key>: value)
    spaces: dict[str, dict] = None  # method -> its search space at this horizon, fixed keys left out
    experiments: dict[str, dict] = None  # method -> what its tune measures (selection.experiment)


def _ints(key: str, text: str) -> list[int]:
    try:
        value = yaml.safe_load(text if text.startswith("[") else f"[{text}]")
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise TypeError
    except (yaml.YAMLError, TypeError):
        raise TuneError(f"{key}: must be integers, e.g. {key}=[100,101], got {text!r}") from None
    if len(set(value)) != len(value):
        raise TuneError(f"{key}: a seed is named twice: {value}")
    if not all(0 <= v <= SEED_MAX for v in value):
        raise TuneError(f"{key}: seeds must lie in [0, 2**63 - 1], got {value}")
    return value


def _positive(key: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise TuneError(f"{key}: must be one integer >= 1, got {text!r}") from None
    if value < 1:
        raise TuneError(f"{key}: must be >= 1, got {value}")
    return value


def plan(options: dict[str, str], run_overrides: list[str]) -> tuple[Request, list[Run], Grid]:
    """Every method's trials x seeds as validated runs (one per point, same order), before any
    compute; a bad request raises TuneError or GridError naming the key."""
    methods = options.get("method", ",".join(METHODS.names())).split(",")
    for name in methods:
        if name not in METHODS:
            raise TuneError(f"method: unknown method {name!r}; valid: {', '.join(METHODS.names())}")
    trials = _positive("trials", options.get("trials", str(DEFAULT_TRIALS)))
    seeds = _ints("seeds", options.get("seeds", str(list(DEFAULT_SEEDS))))
    report = _positive("report_seeds", options.get("report_seeds", str(DEFAULT_REPORT_SEEDS)))
    overlap = sorted(set(seeds) & set(range(report)))
    if overlap:
        raise TuneError(f"seeds: tuning seeds {overlap} are also report seeds (0..{report - 1}); a configuration "
                        f"must not be chosen on the runs that report it: tune on seeds from 100 up")
    include_default = _boolean("include_default", options.get("include_default", "false"))
    grid = load_grid("-", run_overrides)
    if grid.hparams:
        raise TuneError("hparams: a tune draws its own configurations; hparams= is for benchmark.sweep")
    if grid.axes:
        raise TuneError(f"{', '.join(grid.axes)}: the tune takes no axes (key=a,b); it draws the tuned keys itself")
    given = {}
    for override in grid.cli:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key == "seed":
            raise TuneError("seed: the tune sets each run's seed; give the tuning seeds as seeds=[...]")
        given[key] = yaml.safe_load(value)
    cfg = _compose([f"method={methods[0]}", *grid.cli])
    if not cfg.suite.validation:
        raise TuneError(f"suite.validation: suite {cfg.suite.name!r} names no validation tasks, and the tune "
                        "selects on validation tasks only")
    points, drawn_of, fixed_of, spaces, experiments = [], {}, {}, {}, {}
    for name in methods:
        declared = METHODS.get(name).search
        fixed = {f"method.{k}": given[f"method.{k}"] for k in sorted(declared) if f"method.{k}" in given}
        if declared and len(fixed) == len(declared):
            raise TuneError(f"{', '.join(fixed)}: every key {name} tunes is held fixed; nothing is left to tune")
        composed = _compose([f"method={name}", *grid.cli])
        space = {k: d for k, d in resolve(declared, composed.train.steps).items() if f"method.{k}" not in fixed}
        config = OmegaConf.to_container(OmegaConf.structured(composed), resolve=True)
        exp = selection.experiment(config, [f"method.{k}" for k in space], METHODS.get(name).config)
        # Nothing to tune (scratch): draws gives empty configurations, and the trials are one run.
        default = [{k: getattr(composed.method, k) for k in sorted(space)}] if include_default and space else []
        try:
            configurations = default + draws(space, selection.experiment_key(cfg.suite.name, name, exp),
                                             trials - len(default), taken=default)
        except ValueError as e:
            raise TuneError(f"trials: {name}: {e}") from None
        fixed_of[name], spaces[name], experiments[name] = fixed, space, exp
        held = [f"{k}={override_text(v)}" for k, v in fixed.items()]
        for t, values in enumerate(configurations):
            drawn = [f"method.{k}={override_text(v)}" for k, v in sorted(values.items())]
            drawn_of.setdefault(name, []).append(sorted([*drawn, *held]))
            for seed in seeds:
                points.append(({"method": name, "trial": str(t), "seed": str(seed)},
                               dedupe([*grid.cli, f"method={name}", f"seed={seed}", *drawn])))
    runs = compose_points(points)
    request = Request(methods, trials, seeds, cfg.suite.name, list(cfg.suite.validation), Path(cfg.results_dir),
                      grid.cli, drawn_of, include_default, fixed_of, spaces, experiments)
    return request, runs, grid


def _boolean(key: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise TuneError(f"{key}: must be true or false, got {text!r}")
    return text.lower() == "true"


def _compose(overrides: list[str]):
    """A validated base config; a bad key or value (Hydra's errors included) is a GridError naming it.
    Whether phi moves is checked on each trial's own config (compose_points): the tuned keys are drawn."""
    try:
        return compose_config(overrides, moves=False)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise GridError(hydra_message(e)) from None


def trials_of(request: Request, runs: list[Run]) -> dict[str, list[Trial]]:
    """method -> its trials, with the validation_mean of each finished run (never target accuracy)."""
    out: dict[str, list[Trial]] = {}
    by_point = iter(runs)
    for name in request.methods:
        out[name] = []
        for t in range(request.trials):
            members = [next(by_point) for _ in request.seeds]
            trial = Trial(t, request.drawn[name][t], {int(r.axes["seed"]): r.dir.id for r in members})
            for run in members:
                seed = int(run.axes["seed"])
                if run.dir.done:
                    try:
                        trial.validation[seed] = run.dir.validation_mean()
                    except UnreadableSummary as e:  # not scored; named below the trial table
                        trial.unreadable[seed] = str(e)
                elif run.dir.diverged:
                    trial.diverged.append(seed)
            out[name].append(trial)
    return out


def report(request: Request, trials: dict[str, list[Trial]], write: bool) -> tuple[list[str], list[str]]:
    """Print each method's trial table; write its selection file once all its trials finished.
    Returns (methods still waiting for runs, methods whose every trial diverged)."""
    folder = request.results_dir / "selected" / request.suite
    waiting, failed = [], []
    for name, rows in trials.items():
        finished = all(t.complete for t in rows)
        chosen = selection.select(rows) if finished else None
        print(f"\n{selection.label(name, request.fixed[name])}: {len(rows)} trials x seeds {request.seeds}, "
              "validation mean accuracy (%)")
        for t in rows:
            per_seed = " ".join(f"{100 * t.validation[s]:6.2f}" if s in t.validation else
                                ("  div." if s in t.diverged else " unrd." if s in t.unreadable else "     -")
                                for s in request.seeds)
            score = "" if math.isnan(t.score) else f"{100 * t.score:6.2f}"
            mark = "*" if chosen is not None and t.index == chosen.index else " "
            print(f" {mark} trial {t.index:>2}  {per_seed}  mean {score:>6}  {' '.join(t.overrides) or '(nothing tuned)'}")
        for t in rows:
            for why in t.unreadable.values():
                print(f"  unreadable: {why}; trial {t.index} is not scored (delete the run folder to run it again)")
        if chosen is None:
            if finished:
                print(f"  every trial of {name} diverged: nothing to select")
                failed.append(name)
            else:
                waiting.append(name)
            continue
        space = request.spaces[name]
        record = selection.selection_record(
            name, request.suite, rows, chosen, request.seeds, describe(space), request.validation, request.shared,
            fixed=request.fixed[name], include_default=request.include_default, exp=request.experiments[name],
            edges=edges(space, {o.partition("=")[0].removeprefix("method."): yaml.safe_load(o.partition("=")[2])
                                for o in chosen.overrides}),
            reasons=reasons(space))
        if record["separated"] is False:
            print(f"  not separated: the margin to trial {record['runner_up']} ({100 * record['margin']:.2f} points) "
                  f"is inside the winner's seed-to-seed spread ({100 * record['spread']:.2f})")
        for edge in record["edges"]:
            print(f"  EDGE: {edge}: widen the range and tune again")
        if write:
            print(f"  selected trial {chosen.index}: {selection.write(folder, record)}")
    return waiting, failed
