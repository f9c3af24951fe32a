"""Grids: a YAML of axes, overrides and launcher settings, expanded into validated runs.

A grid is a YAML in ``benchmark/conf/grid/`` (give its name), any YAML (give its path),
or ``-`` (axes from the command line only)::

    axes:                 # the runs are the cartesian product of these
      method: [ours, reptile]
      seed: [0, 1, 2]
    overrides: []         # applied to every run
    per_method:           # applied to the runs of one method
      reptile: ["method.reset_every=100"]
    slurm: {partition: debug, time_min: 60}   # see settings.SlurmSettings
    local: {jobs: 0}                          # see settings.LocalSettings

On the command line, ``key=a,b,c`` (or any Hydra sweep: ``range(0,5)``, ``choice(...)``)
is an axis and ``key=value`` an override for every run; either replaces the grid's axis
of the same key. ``slurm.<key>=`` and ``local.<key>=`` set the launchers.
``hparams=<results_dir>/selected/<suite>`` runs every method at the configuration
``benchmark.tune`` selected for it (a method without a selection file is an error). A point
that sets a key the method tunes (a K study's ``method.reset_every=1000``) takes the file
tuned with that key held (``<method>@reset_every=1000.yaml``), and is refused without one;
a selection tuned in another experiment (another ``train.steps``, model, sources...) is
refused, naming the keys, unless ``hparams_any_horizon=true``.

:func:`load_grid` reads a grid and the command line, :func:`expand` lists its points
(axis values and overrides, as text) and :func:`compose_runs` composes and validates each
point once into a :class:`Run`.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import re
from pathlib import Path

import yaml
from hydra import initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.compose import compose_config, compose_run, explain
from benchmark.config import cores, validate
from benchmark.runtime.storage import RunDir
from benchmark.sweeps import selection
from benchmark.sweeps.settings import LocalSettings, SlurmSettings
from methods.base import METHODS

GRID_DIR = Path(__file__).resolve().parents[1] / "conf" / "grid"
GRID_KEYS = ("axes", "overrides", "per_method", "slurm", "local")
PLAIN = re.compile(r"[\w.:/+-]+")  # values that need no quotes in a Hydra override


class GridError(ValueError):
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
    hparams: selection.Selected | None = None  # hparams=: each method's selected overrides
    hparams_any_horizon: bool = False  # apply a selection tuned in another experiment anyway
    selected_by: dict[tuple[str, ...], selection.Entry] = dataclasses.field(default_factory=dict)  # point -> its file


@dataclasses.dataclass
class Run:
    """One point of a grid: the overrides that make it and the run folder they name."""

    overrides: list[str]  # passed to benchmark.run as they are, in this order
    axes: dict[str, str]  # this run's value on each axis of the grid, for tables
    dir: RunDir

    @property
    def results_dir(self) -> Path:
        return Path(self.dir.config["results_dir"])

    @property
    def world_size(self) -> int:
        return self.dir.config["runner"]["world_size"]

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.axes.items()) or self.dir.id

    @property
    def cores(self) -> int:
        """Cores the run keeps busy: its ranks times their threads (0 threads: all cores)."""
        threads = self.dir.config["runner"]["threads"]
        return self.world_size * threads if threads else cores()


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


def config_dir_override(path: str) -> str:
    """``--config-dir <dir>`` as the override every run of a sweep or tune carries, so each
    ``benchmark.run`` process (and SLURM job) finds the suite files there, as its own
    ``--config-dir`` would."""
    folder = Path(path).expanduser().absolute()
    if not folder.is_dir():
        raise GridError(f"--config-dir: {folder} is not a directory")
    return f"hydra.searchpath={override_text([f'file://{folder}'])}"


def grid_names() -> list[str]:
    return sorted(p.stem for p in GRID_DIR.glob("*.yaml"))


def read_grid(spec: str) -> dict:
    """The grid's YAML as a dict: ``-`` (empty), a name in conf/grid/, or a path."""
    if spec == "-":
        return {}
    path = Path(spec) if spec.endswith((".yaml", ".yml")) or os.sep in spec else GRID_DIR / f"{spec}.yaml"
    if not path.exists():
        raise GridError(f"grid {spec!r}: no such file {path}; grids: {', '.join(grid_names())}, or a path, or -")
    data = _grid_yaml(spec, path)
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise GridError(f"grid {spec!r}: unknown key {unknown[0]!r}; valid: {', '.join(GRID_KEYS)}")
    return data


def _grid_yaml(spec: str, path: Path) -> dict:
    """A grid file's mapping, its list-valued keys checked; a GridError naming the file otherwise."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise GridError(f"grid {spec!r}: {path}{where}: not valid YAML "
                        f"({getattr(e, 'problem', None) or str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise GridError(f"grid {spec!r}: {path} holds a {type(data).__name__}, not a mapping of "
                        f"{', '.join(GRID_KEYS)}")
    for key in ("axes", "per_method", "slurm", "local"):
        if not isinstance(data.get(key) or {}, dict):
            raise GridError(f"{key}: must be a mapping (in {path}), got {data[key]!r}")
    lists = [("overrides", data.get("overrides")),
             *((f"per_method.{m}", v) for m, v in (data.get("per_method") or {}).items())]
    for key, value in lists:
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise GridError(f"{key}: must be a list of key=value (in {path}), got {value!r}")
    return data


def settings(cls, block: dict | None, overrides: dict[str, str], prefix: str):
    """A launcher's settings: the grid's block, then the command line; a wrong key is named."""
    fields = {f.name for f in dataclasses.fields(cls)}
    merged = {**(block or {}), **{k: yaml.safe_load(v) for k, v in overrides.items()}}
    for key in merged:
        if key not in fields:
            raise GridError(f"{prefix}.{key}: unknown key; valid: {', '.join(sorted(fields))}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), merged))
    except OmegaConfBaseException as e:
        raise GridError(f"{prefix}.{getattr(e, 'full_key', '')}: {str(e).splitlines()[0]}") from None
    except ValueError as e:
        raise GridError(str(e).splitlines()[0]) from None


def load_grid(spec: str, cli: list[str]) -> Grid:
    """The grid ``spec`` with the command line's axes, overrides and launcher settings."""
    data = read_grid(spec)
    axes = {}
    for key, values in (data.get("axes") or {}).items():
        if not isinstance(values, list) or not values:
            raise GridError(f"axes.{key}: must be a non-empty list, got {values!r}")
        axes[key] = [override_text(v) for v in values]
    per_method = {m: list(ovs) for m, ovs in (data.get("per_method") or {}).items()}
    for name in per_method:
        if name not in METHODS:
            raise GridError(f"per_method.{name}: unknown method; valid: {', '.join(METHODS.names())}")
    fixed = list(data.get("overrides") or [])
    for text in [*fixed, *(o for ovs in per_method.values() for o in ovs)]:
        if _parse(text).is_sweep_override():
            raise GridError(f"{text!r}: a sweep in fixed overrides; make it an axis")

    launcher_args, rest, hparams, any_horizon = {"slurm": {}, "local": {}}, [], None, False
    for text in cli:
        head, _, value = text.partition("=")
        if head == "hparams_any_horizon":
            if value not in ("true", "false"):
                raise GridError(f"hparams_any_horizon: must be true or false, got {value!r}")
            any_horizon = value == "true"
            continue
        if head == "hparams":
            try:
                hparams = selection.read_dir(value, METHODS.names())
            except selection.SelectionError as e:
                raise GridError(str(e)) from None
            continue
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
                settings(LocalSettings, data.get("local"), launcher_args["local"], "local"), rest, hparams, any_horizon)


def _parse(text: str):
    try:
        return OverridesParser.create().parse_override(text)
    except HydraException as e:
        raise GridError(f"{text!r}: {str(e).splitlines()[0]}") from None


def _key(override) -> str:
    return override.get_key_element().lstrip("+~")


def dedupe(overrides: list[str]) -> list[str]:
    """One override per key, the last one given, in first-given order."""
    last = {_key(_parse(o)): o for o in overrides}
    return list(last.values())


def expand(grid: Grid) -> list[tuple[dict[str, str], list[str]]]:
    """Every point of the grid: (its axis values, its overrides).

    Order, later winning: the grid's overrides, its per-method ones, the method's selected
    hyperparameters (``hparams=``), the point's axis values, the command line's overrides."""
    points = []
    for values in itertools.product(*grid.axes.values()):
        point = dict(zip(grid.axes, values))
        axis_overrides = [f"{k}={v}" for k, v in point.items()]
        given = dict(_split(o) for o in [*grid.overrides, *axis_overrides, *grid.cli])
        method = given.get("method")
        if method is None and (grid.per_method or grid.hparams):
            method = default_method()
        per_method = grid.per_method.get(method, [])
        entry = _selected(grid.hparams, method, given) if grid.hparams else None
        overrides = dedupe([*grid.overrides, *per_method, *(entry.overrides if entry else []), *axis_overrides,
                            *grid.cli])
        if entry is not None:
            grid.selected_by[tuple(overrides)] = entry
        points.append(({k.lstrip("+~"): v for k, v in point.items()}, overrides))
    return points


def _selected(hparams: selection.Selected, method: str, given: dict[str, str]) -> selection.Entry:
    """A point's selection; refused for another suite than the tune's, a method the tune did not
    select (with the point's fixed tuned keys), or a seed it tuned on (report seeds never choose
    their configuration)."""
    suite = given.get("suite") or default_config().suite.name
    if suite != hparams.suite:
        raise GridError(f"hparams: the selections are for suite {hparams.suite!r}, this grid runs suite {suite!r}")
    fixed = {f"method.{k}": given[f"method.{k}"] for k in sorted(METHODS.get(method).search) if f"method.{k}" in given}
    entry = hparams.find(method, fixed)
    if entry is None:
        name = selection.label(method, fixed)
        tune = " ".join([f"method={method}", *(f"{k}={v}" for k, v in fixed.items())])
        raise GridError(f"hparams: no selection for {name!r}; selected: {', '.join(hparams.entries)} "
                        f"(run benchmark.tune {tune} first)")
    seed = int(given.get("seed") or default_config().seed)
    if seed in hparams.tuning_seeds:
        raise GridError(f"seed: {seed} is a tuning seed of these selections ({sorted(hparams.tuning_seeds)}); "
                        "report on other seeds")
    return entry


def check_selected(grid: Grid, runs: list[Run]) -> None:
    """Refuse a run whose selection was tuned in another experiment (``selection.check_experiment``),
    unless ``hparams_any_horizon=true``; raises GridError naming the keys and both values."""
    if grid.hparams is None or grid.hparams_any_horizon:
        return
    for run in runs:
        entry = grid.selected_by.get(tuple(run.overrides))
        if entry is None:
            continue
        drawn = [f"method.{k}" for k in METHODS.get(entry.method).search if f"method.{k}" not in entry.fixed]
        problem = selection.check_experiment(entry, run.dir.config, drawn, METHODS.get(entry.method).config)
        if problem:
            raise GridError(problem)


@functools.lru_cache(maxsize=1)
def default_config():
    """The config of a run given no override (``conf/config.yaml``'s defaults)."""
    return compose_config([])


def default_method() -> str:
    """The method of a run that names none: ``conf/config.yaml``'s default (no override can
    change it other than ``method=``, which :func:`expand` reads from the overrides)."""
    return default_config().method.name


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def compose_runs(points: list[tuple[dict[str, str], list[str]]]) -> list[Run]:
    """Compose and validate every point, once, before anything runs; a failure names its key.

    Points that name the same run folder (they differ only in keys that do not change
    results, e.g. runner.threads) are one run."""
    return unique_runs(compose_points(points))


def unique_runs(runs: list[Run]) -> list[Run]:
    """One run per folder, the first that names it."""
    first: dict[str, Run] = {}
    for run in runs:
        first.setdefault(run.dir.id, run)
    return list(first.values())


def hydra_message(error: Exception) -> str:
    """A composition error as one line naming the key and what it accepts (compose.explain)."""
    return explain(error) if isinstance(error, (HydraException, OmegaConfBaseException)) else str(error)


def compose_points(points: list[tuple[dict[str, str], list[str]]]) -> list[Run]:
    """One validated run per point, in order (points may name the same folder); raises
    GridError listing every bad point, and then nothing has started."""
    runs, errors = [], {}
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        for axes, overrides in points:
            try:
                cfg = validate(compose_run(overrides))
            except (HydraException, OmegaConfBaseException, ValueError) as e:
                message = hydra_message(e)
                errors.setdefault(message, []).append(" ".join(f"{k}={v}" for k, v in axes.items()))
                continue
            runs.append(Run(overrides, axes, RunDir(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))))
    if errors:  # one line per distinct error
        raise GridError("\nerror: ".join(
            f"{msg} (in {len(pts)} of {len(points)} runs, e.g. {pts[0] or 'the only run'}; nothing was started)"
            for msg, pts in errors.items()))
    return runs
