"""Selected hyperparameters: choosing a trial on validation accuracy, and the files that record it.

``<results_dir>/selected/<suite>/<method>.yaml`` is written by ``benchmark.tune`` and read
by ``benchmark.sweep ... hparams=<results_dir>/selected/<suite>``. It holds the chosen
overrides and their score, the number of trials, the tuning seeds, the search space, the
experiment it was tuned in (:func:`experiment`), the winner's seed-to-seed spread and margin,
any edge of the range it sits on, and a table of every trial. A tune that holds some tuned
keys fixed (a K study: ``method.reset_every=1000``) writes ``<method>@reset_every=1000.yaml``
and leaves ``<method>.yaml`` alone; a sweep point that sets a tuned key uses the file whose
fixed keys it matches, and is refused when there is none.

A trial's score is the mean over the tuning seeds of each run's ``validation_mean``
(summary.json): accuracy on the suite's validation tasks, which are never trained on and
never reported. Nothing here reads target accuracy.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from benchmark import atomic
from benchmark.config import Config
from benchmark.models import MODELS
from benchmark.runtime.storage import identity
from methods.base import METHODS

CRITERION = ("mean over the tuning seeds of validation_mean: the accuracy of the final phi on the suite's "
             "validation tasks (never its targets)")


class SelectionError(ValueError):
    """A missing or malformed selection file."""


@dataclass
class Trial:
    """One configuration of a method and its runs, one per tuning seed."""

    index: int
    overrides: list[str]  # the tuned keys' values as key=value ([] for a method with nothing to tune)
    run_ids: dict[int, str]  # tuning seed -> run folder id
    validation: dict[int, float] = field(default_factory=dict)  # seed -> validation_mean, for finished runs
    diverged: list[int] = field(default_factory=list)  # seeds whose run diverged
    unreadable: dict[int, str] = field(default_factory=dict)  # seed -> why its done run's summary cannot be read

    @property
    def complete(self) -> bool:
        return len(self.validation) + len(self.diverged) == len(self.run_ids)

    @property
    def score(self) -> float:
        """Mean validation accuracy over the seeds; NaN if any seed diverged or is unfinished."""
        if self.diverged or len(self.validation) < len(self.run_ids):
            return math.nan
        return sum(self.validation.values()) / len(self.validation)


def select(trials: list[Trial]) -> Trial | None:
    """The trial with the highest score (the earliest on a tie); None if none has a score.
    A diverged trial is never selected."""
    scored = [t for t in trials if not math.isnan(t.score)]
    return max(scored, key=lambda t: (t.score, -t.index)) if scored else None


# Keys that do not change what a tune measures (the final phi's validation accuracy): the
# seed (the tune sets it), the targets (never read by selection: changing them must not
# change the draws, let alone the selection), and what is meta-tested besides the final phi.
NOT_EXPERIMENT = ("seed", "suite.targets", "train.log_every", "checkpoint.phi_every", "metatest.at_steps", "metatest.validation_at_steps",
                  "metatest.train_sizes", "metatest.episodes", "metatest.episode_ways", "metatest.episode_shots",
                  "metatest.episode_queries", "metatest.episode_steps", "metatest.episode_lr",
                  "metatest.episode_body")


def experiment(config: dict, drawn: list[str], method_config: type | None = None) -> dict[str, Any]:
    """What a tune of this run config measures, flattened (``{"train.steps": 400, ...}``): the
    run id's keys (no paths, no process layout) without :data:`NOT_EXPERIMENT`, the targets'
    fingerprints, the ``drawn`` keys (``method.<key>``), and a key of ``method_config`` that
    interpolates a drawn key (Reptile's ``aggregate_every: ${.reset_every}``) while it still
    equals it. A tune's draws are seeded by it and a sweep's ``hparams=`` checks it."""
    flat = _flatten(identity(config))
    targets = set(config["suite"]["targets"])
    follows = {f"method.{f.name}": f"method.{f.default[3:-1]}" for f in dataclasses.fields(method_config or object)
               if isinstance(f.default, str) and f.default.startswith("${.")} if method_config else {}
    out = {}
    for key, value in flat.items():
        if key in NOT_EXPERIMENT or key in drawn:
            continue
        if follows.get(key) in drawn and value == flat.get(follows[key]):
            continue
        if key.startswith("suite.fingerprints.") and key.removeprefix("suite.fingerprints.") in targets:
            continue
        out[key] = value
    return out


def experiment_key(suite: str, method: str, exp: dict[str, Any]) -> str:
    """The seed of a tune's draws: the suite, the method and the experiment, as canonical JSON."""
    return json.dumps({"suite": suite, "method": method, "experiment": exp}, sort_keys=True)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        return {k: v for key, child in node.items() for k, v in _flatten(child, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def label(method: str, fixed: dict[str, Any]) -> str:
    """A selection's file stem: ``ours``, or ``ours@reset_every=1000`` with fixed keys."""
    if not fixed:
        return method
    return method + "@" + ",".join(f"{k.removeprefix('method.')}={v}" for k, v in sorted(fixed.items()))


def margin(trials: list[Trial], chosen: Trial) -> dict[str, Any]:
    """The winner's seed-to-seed spread (max - min of its validation_mean over the tuning seeds)
    and its margin to the runner-up; "not separated" when the margin is inside the spread."""
    values = list(chosen.validation.values())
    spread = max(values) - min(values) if len(values) > 1 else None
    # The runner-up is another configuration: a method with nothing to tune has one, run once.
    others = [t for t in trials if t.overrides != chosen.overrides and not math.isnan(t.score)]
    if not others:
        return {"spread": spread, "runner_up": None, "margin": None, "separated": None}
    runner_up = max(others, key=lambda t: (t.score, -t.index))
    gap = chosen.score - runner_up.score
    separated = None if spread is None else bool(gap > spread)
    return {"spread": None if spread is None else round(spread, 6), "runner_up": runner_up.index,
            "margin": round(gap, 6), "separated": separated}


def selection_record(method: str, suite: str, trials: list[Trial], chosen: Trial, seeds: list[int],
                     space: dict[str, str], validation: list[str], shared: list[str], *,
                     fixed: dict[str, Any] | None = None, include_default: bool = False,
                     exp: dict[str, Any] | None = None, edges: list[str] | None = None,
                     reasons: dict[str, str] | None = None) -> dict:
    """The content of ``<label>.yaml``."""
    return {
        "method": method, "suite": suite, "fixed": dict(fixed or {}),
        "overrides": chosen.overrides, "trial": chosen.index, "score": round(chosen.score, 6),
        **margin(trials, chosen), "edges": list(edges or []),
        "criterion": CRITERION, "validation_tasks": validation,
        "trials": len(trials), "distinct_configurations": len({tuple(t.overrides) for t in trials}),
        "include_default": include_default,
        "tuning_seeds": seeds, "search_space": space, "search_reasons": dict(reasons or {}),
        "shared_overrides": shared, "experiment": dict(exp or {}),
        "table": [{"trial": t.index, "overrides": t.overrides,
                   "score": None if math.isnan(t.score) else round(t.score, 6),
                   "validation_mean": {s: round(v, 6) for s, v in sorted(t.validation.items())},
                   "diverged_seeds": t.diverged, "run_ids": t.run_ids} for t in trials],
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # a list written twice is written twice, not as &id001
        return True


def write(folder: Path, record: dict) -> Path:
    path = folder / f"{label(record['method'], record.get('fixed') or {})}.yaml"
    atomic.write_text(path, yaml.dump(record, Dumper=_Dumper, sort_keys=False, width=120))
    return path


@dataclass
class Entry:
    """One selection file: a method's overrides, chosen with ``fixed`` keys held (a study) or not."""

    path: Path
    method: str
    fixed: dict[str, Any]  # method.<key> -> value held during the tune ({}: the main selection)
    overrides: list[str]
    experiment: dict[str, Any] | None  # None: a file written before tunes recorded it


@dataclass
class Selected:
    """A folder of selection files: each method's overrides, and what they were chosen on."""

    suite: str
    entries: dict[str, Entry]  # label (file stem) -> its selection
    tuning_seeds: set[int]  # every tuning seed of every method: never a report seed

    @property
    def overrides(self) -> dict[str, list[str]]:
        """method -> the overrides of its main selection (no fixed keys)."""
        return {e.method: e.overrides for e in self.entries.values() if not e.fixed}

    def find(self, method: str, fixed: dict[str, Any]) -> Entry | None:
        """The selection of ``method`` whose fixed keys are exactly ``fixed`` (values compared as YAML)."""
        want = {k: _value(v) for k, v in fixed.items()}
        for entry in self.entries.values():
            if entry.method == method and {k: _value(v) for k, v in entry.fixed.items()} == want:
                return entry
        return None


def _value(v: Any) -> Any:
    return yaml.safe_load(v) if isinstance(v, str) else v


def check_experiment(entry: Entry, config: dict, drawn: list[str], method_config: type) -> str | None:
    """Why ``entry`` does not apply to a run of ``config`` (its experiment differs: another
    ``train.steps``, model, sources...), naming each key with both values; None if it applies."""
    here = experiment(config, drawn, method_config)
    if entry.experiment is None:  # an older file: its horizon, from its shared overrides
        there = {"train.steps": 400}
        for o in entry_shared(entry):
            if o.startswith("train.steps="):
                there["train.steps"] = int(o.partition("=")[2])
    else:
        there = entry.experiment
    keys = sorted(k for k in set(here) | set(there) if here.get(k, "(unset)") != there.get(k, "(unset)")
                  and (entry.experiment is not None or k in there))
    if not keys:
        return None
    diffs = "; ".join(f"{k}={there.get(k, '(unset)')} there, {here.get(k, '(unset)')} here" for k in keys[:3])
    more = f" (and {len(keys) - 3} more keys)" if len(keys) > 3 else ""
    return (f"hparams: {entry.path.name} was tuned in another experiment: {diffs}{more}; tune at these settings, "
            "or pass hparams_any_horizon=true to apply it anyway")


def entry_shared(entry: Entry) -> list[str]:
    try:
        return list(yaml.safe_load(entry.path.read_text()).get("shared_overrides") or [])
    except (OSError, yaml.YAMLError, AttributeError):
        return []


def read_dir(folder: str | Path, methods: list[str]) -> Selected:
    """The selections in ``folder`` (``<label>.yaml`` files of one suite); ``methods`` are the
    registered names, which each file's method must be one of. Two files of one method with the
    same fixed keys are an error naming both."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SelectionError(f"hparams: {folder} is not a folder of selected hyperparameters "
                             "(benchmark.tune writes <results_dir>/selected/<suite>/)")
    entries, suites, seeds = {}, set(), set()
    for path in sorted(folder.glob("*.yaml")):
        try:
            record = yaml.safe_load(path.read_text())
            if not isinstance(record, dict):
                raise TypeError(f"holds a {type(record).__name__}, not a mapping")
            overrides = record["overrides"]
            if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
                raise TypeError("overrides must be a list of key=value")
            method = record.get("method", path.stem.partition("@")[0])
            fixed = dict(record.get("fixed") or {})
            exp = record.get("experiment") or None
            suites.add(record["suite"])
            seeds |= {int(s) for s in record["tuning_seeds"]}
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as e:
            reason = f"no {e}" if isinstance(e, KeyError) else " ".join(str(e).split())
            raise SelectionError(f"hparams: {path}: not a selection file ({reason})") from None
        if method not in methods:
            raise SelectionError(f"hparams: {path}: unknown method {method!r}; valid: {', '.join(methods)}")
        name = label(method, fixed)
        if name in entries:
            raise SelectionError(f"hparams: {entries[name].path} and {path} both select {name!r}; keep one")
        check_overrides(path, method, overrides)
        entries[name] = Entry(path, method, fixed, overrides, exp)
    if not entries:
        raise SelectionError(f"hparams: {folder} holds no <method>.yaml")
    if len(suites) > 1:
        raise SelectionError(f"hparams: {folder} mixes selections of suites {sorted(suites)}")
    return Selected(suites.pop(), entries, seeds)


# Keys a selection never sets: the run's seed (the tuning/report seed guard reads the sweep's),
# its suite (the suite guard) and its method (the file's own).
NOT_SELECTABLE = ("seed", "suite", "method")


def check_overrides(path: Path, method: str, overrides: list[str]) -> None:
    """Each override of a selection file parses and names a key of ``method``'s run config, and
    none sets the seed, suite or method; a one-line SelectionError naming the file otherwise."""
    for text in overrides:
        try:
            key = OverridesParser.create().parse_override(text).get_key_element().lstrip("+~")
        except HydraException as e:
            raise SelectionError(f"hparams: {path}: {text!r} is not key=value ({str(e).splitlines()[0]})") from None
        if key in NOT_SELECTABLE:
            raise SelectionError(f"hparams: {path}: {key}: a selection does not set the {key} ({text!r}); "
                                 "the sweep gives it")
        head, *rest = key.split(".")
        roots = {"method": [METHODS.get(method).config], "model": [MODELS.get(n).config for n in MODELS]}
        known = any(_has_path(root, rest) for root in roots[head]) if head in roots else _has_path(Config, [head, *rest])
        if not known:
            raise SelectionError(f"hparams: {path}: {key}: unknown key for method {method!r} ({text!r})")


def _has_path(cls: Any, parts: list[str]) -> bool:
    """Whether the dataclass ``cls`` has the nested field ``parts``."""
    if not parts:
        return True
    if not dataclasses.is_dataclass(cls):
        return False
    hints = typing.get_type_hints(cls)
    return parts[0] in hints and _has_path(hints[parts[0]], parts[1:])
