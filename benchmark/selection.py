"""Selected hyperparameters: choosing a trial on validation accuracy, and the files that record it.

``<results_dir>/selected/<suite>/<method>.yaml`` is written by ``benchmark.tune`` and read
by ``benchmark.sweep ... hparams=<results_dir>/selected/<suite>``. It holds the chosen
overrides and their score, the number of trials, the tuning seeds, the search space and
a table of every trial.

A trial's score is the mean over the tuning seeds of each run's ``validation_mean``
(summary.json): accuracy on the suite's validation tasks, which are never trained on and
never reported. Nothing here reads target accuracy.
"""
from __future__ import annotations

import dataclasses
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
from methods.base import METHODS

CRITERION = ("mean over the tuning seeds of validation_mean: the accuracy of the final phi on the suite's "
             "validation tasks (never its targets)")


class SelectionError(ValueError):
    """A missing or malformed selection file."""


@dataclass
class Trial:
    """One configuration of a method and its runs, one per tuning seed."""

    index: int
    overrides: list[str]  # the tuned keys' values as key=value ([] for trial 0: the default)
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


def selection_record(method: str, suite: str, trials: list[Trial], chosen: Trial, seeds: list[int],
                     space: dict[str, str], validation: list[str], shared: list[str]) -> dict:
    """The content of ``<method>.yaml``."""
    return {
        "method": method, "suite": suite,
        "overrides": chosen.overrides, "trial": chosen.index, "score": round(chosen.score, 6),
        "criterion": CRITERION, "validation_tasks": validation,
        "trials": len(trials), "distinct_configurations": len({tuple(t.overrides) for t in trials}),
        "tuning_seeds": seeds, "search_space": space, "shared_overrides": shared,
        "table": [{"trial": t.index, "overrides": t.overrides,
                   "score": None if math.isnan(t.score) else round(t.score, 6),
                   "validation_mean": {s: round(v, 6) for s, v in sorted(t.validation.items())},
                   "diverged_seeds": t.diverged, "run_ids": t.run_ids} for t in trials],
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # a list written twice is written twice, not as &id001
        return True


def write(folder: Path, record: dict) -> Path:
    path = folder / f"{record['method']}.yaml"
    atomic.write_text(path, yaml.dump(record, Dumper=_Dumper, sort_keys=False, width=120))
    return path


@dataclass
class Selected:
    """A folder of selection files: each method's overrides, and what they were chosen on."""

    suite: str
    overrides: dict[str, list[str]]  # method -> its selected key=value overrides
    tuning_seeds: set[int]  # every tuning seed of every method: never a report seed


def read_dir(folder: str | Path, methods: list[str]) -> Selected:
    """The selections in ``folder`` (``<method>.yaml`` files of one suite); ``methods`` are the
    registered names, which each file's method must be one of."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SelectionError(f"hparams: {folder} is not a folder of selected hyperparameters "
                             "(benchmark.tune writes <results_dir>/selected/<suite>/)")
    chosen, suites, seeds, files = {}, set(), set(), {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            record = yaml.safe_load(path.read_text())
            if not isinstance(record, dict):
                raise TypeError(f"holds a {type(record).__name__}, not a mapping")
            overrides = record["overrides"]
            if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
                raise TypeError("overrides must be a list of key=value")
            method = record.get("method", path.stem)
            suites.add(record["suite"])
            seeds |= {int(s) for s in record["tuning_seeds"]}
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
            reason = f"no {e}" if isinstance(e, KeyError) else " ".join(str(e).split())
            raise SelectionError(f"hparams: {path}: not a selection file ({reason})") from None
        if method not in methods:
            raise SelectionError(f"hparams: {path}: unknown method {method!r}; valid: {', '.join(methods)}")
        if method in files:
            raise SelectionError(f"hparams: {files[method]} and {path} both select method {method!r}; keep one")
        check_overrides(path, method, overrides)
        chosen[method], files[method] = overrides, path
    if not chosen:
        raise SelectionError(f"hparams: {folder} holds no <method>.yaml")
    if len(suites) > 1:
        raise SelectionError(f"hparams: {folder} mixes selections of suites {sorted(suites)}")
    return Selected(suites.pop(), chosen, seeds)


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
