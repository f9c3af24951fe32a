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

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmark import atomic

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
    chosen, suites, seeds = {}, set(), set()
    for path in sorted(folder.glob("*.yaml")):
        try:
            record = yaml.safe_load(path.read_text())
            overrides = record["overrides"]
            if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
                raise TypeError("overrides must be a list of key=value")
            method = record.get("method", path.stem)
            suites.add(record["suite"])
            seeds |= {int(s) for s in record["tuning_seeds"]}
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
            raise SelectionError(f"hparams: {path}: not a selection file ({e})") from None
        if method not in methods:
            raise SelectionError(f"hparams: {path}: unknown method {method!r}; valid: {', '.join(methods)}")
        chosen[method] = overrides
    if not chosen:
        raise SelectionError(f"hparams: {folder} holds no <method>.yaml")
    if len(suites) > 1:
        raise SelectionError(f"hparams: {folder} mixes selections of suites {sorted(suites)}")
    return Selected(suites.pop(), chosen, seeds)
