"""The tuning protocol in a report: what was searched, what was chosen, what test-set selection would have chosen.

Reads a tune's results folder (``benchmark.tune``): its selection files
(``selected/<suite>/<method>.yaml``) and its run folders. Writes two files into the
report, from which everything below is computed, so a report regenerates from its own
folder:

- ``protocol.json``: per suite and method, the trials, tuning seeds, search space,
  criterion and the selected overrides;
- ``trials.csv``: one line per trial: its tuned values, its validation accuracy (what
  selection read) and its target accuracy on the tuning seeds (what selection never read).

The *selection gap* table sets each method's selected trial beside the *oracle* trial,
the one with the best target accuracy on the tuning seeds: how much choosing on the test
targets would have flattered the method. The sensitivity figure plots validation
accuracy against each tuned key.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from analysis.collect import collect, method_order
from analysis.tables import MISSING, Table
from benchmark.sweeps.selection import label
from methods.base import display_name

PROTOCOL = "protocol.json"
TRIALS = "trials.csv"


OLD_DEFAULTS = {"include_default": True, "spread": None, "margin": None, "separated": None, "runner_up": None,
                "edges": None}


class ProtocolError(ValueError):
    """A tune folder without selection files, or one whose files disagree with its runs."""


def read_tune(tune: Path) -> tuple[dict, pd.DataFrame]:
    """(protocol, trials) from a tune's results folder."""
    files = sorted((tune / "selected").glob("*/*.yaml"))
    if not files:
        raise ProtocolError(f"--tune: {tune / 'selected'} holds no <suite>/<method>.yaml (run benchmark.tune)")
    collection = collect(tune)
    runs = collection.runs
    target = (runs.groupby("config_hash")["accuracy"].mean() if not runs.empty else pd.Series(dtype=float))
    protocol: dict = {}
    rows = []
    for path in files:
        record = yaml.safe_load(path.read_text())
        suite, method = record["suite"], record["method"]
        name = label(method, record.get("fixed") or {})  # the method, or a study: ours@reset_every=1000
        protocol.setdefault(suite, {})[name] = {
            "method": method, "fixed": record.get("fixed") or {},
            **{k: record[k] for k in ("trials", "distinct_configurations", "tuning_seeds", "search_space", "criterion",
                                      "validation_tasks", "overrides", "trial", "score")},
            # (files written before 2026-12-05 lack these: one tuning seed, trial 0 the default, no edge check)
            **{k: record.get(k, default) for k, default in OLD_DEFAULTS.items()}}
        for trial in record["table"]:
            ids = list(trial["run_ids"].values())
            scores = [target.get(i) for i in ids]
            row = {"suite": suite, "method": name, "trial": trial["trial"],
                   "overrides": " ".join(trial["overrides"]),
                   "validation": trial["score"],
                   "target": (sum(scores) / len(scores)) if all(s is not None for s in scores) else None,
                   "selected": trial["trial"] == record["trial"]}
            row.update({o.partition("=")[0]: yaml.safe_load(o.partition("=")[2]) for o in trial["overrides"]})
            rows.append(row)
    trials = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(method_order(list(trials["method"].unique())))}
    trials = trials.sort_values(["suite", "method", "trial"], key=lambda c: c.map(order) if c.name == "method"
                                else c, kind="stable").reset_index(drop=True)
    return protocol, trials


def k_study(protocol: dict, suite: str) -> dict[str, dict[int, list[str]]]:
    """The K study of a suite: method -> K -> the overrides selected by a tune with that K held
    (``<method>@reset_every=<K>``), the held K among them."""
    out: dict[str, dict[int, list[str]]] = {}
    for entry in protocol.get(suite, {}).values():
        k = (entry.get("fixed") or {}).get("method.reset_every")
        if k is not None:
            out.setdefault(entry["method"], {})[int(k)] = [*entry["overrides"], f"method.reset_every={k}"]
    return out


def write(out: Path, protocol: dict, trials: pd.DataFrame) -> None:
    (out / PROTOCOL).write_text(json.dumps(protocol, indent=1) + "\n")
    trials.to_csv(out / TRIALS, index=False)


def read(folder: Path) -> tuple[dict, pd.DataFrame] | None:
    if not (folder / PROTOCOL).exists():
        return None
    return json.loads((folder / PROTOCOL).read_text()), pd.read_csv(folder / TRIALS)


def shown_name(name: str, method: str) -> str:
    """A tune's name as a reader sees it: "CTS (ours)", or "CTS (ours) (reset_every=10 held)"."""
    return display_name(method) + (f" ({name.partition('@')[2]} held)" if "@" in name else "")


def main_tune(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials of the main tune, without a K study's (``<method>@reset_every=<K>``)."""
    return trials[~trials["method"].astype(str).str.contains("@", regex=False)]


def budget(tunes: dict[str, dict], same: str, unequal: str) -> str:
    """"...the same N trials" when every tune got N, else the unequal budgets, named."""
    counts = sorted({m["trials"] for m in tunes.values()})
    if len(counts) == 1:
        return same.format(counts[0])
    named = ", ".join(f"{name}: {m['trials']}" for name, m in tunes.items())
    return f"{unequal} ({named})"


def paragraph(protocol: dict, suite: str, report_seeds: list[int]) -> list[str]:
    """The Markdown lines stating the protocol of one suite."""
    methods = protocol.get(suite)
    if not methods:
        return []
    first = next(iter(methods.values()))
    tuning = sorted({int(s) for m in methods.values() for s in m["tuning_seeds"]})
    overlap = sorted(set(tuning) & set(report_seeds))
    disjoint = ("disjoint from the tuning seeds" if not overlap
                else f"OVERLAPPING the tuning seeds at {overlap}: these tables are not a clean test")
    # A K study's tunes (K held, ``<method>@reset_every=<K>``) are their own experiment: their
    # budgets are compared with each other, not with the main tune's.
    main = {name: m for name, m in methods.items() if "@" not in name}
    study = {name: m for name, m in methods.items() if "@" in name}
    equal = budget(main, "every method got the same {} trials", "UNEQUAL budgets")
    if study:
        equal += "; " + budget(study, "the K study's tunes (K held, only the meta step size drawn) got {} trials each",
                               "UNEQUAL K-study budgets")
    # (a protocol.json written before 2026-12-05 lacks the new keys: one tuning seed, trial 0 the default)
    methods = {name: {**OLD_DEFAULTS, **m} for name, m in methods.items()}
    defaults = sorted(name for name, m in methods.items() if m["include_default"] and m["search_space"])
    drawn = ("each a distinct draw from the method's search space (the first points of a scrambled Sobol sequence "
             "seeded by the suite, the method and the experiment, never by the targets)" if not defaults else
             f"trial 0 the default of the time for {', '.join(defaults)}, the others draws from the search space")
    lines = ["### Protocol", "",
             f"Hyperparameters were chosen by `benchmark.tune`, a search in which {equal}, {drawn}, declared "
             f"beside each method's config in `methods/<name>.py`; each trial ran on tuning seeds {tuning}. "
             f"Selection criterion: {first['criterion']}; the validation tasks are "
             f"{', '.join(f'`{t}`' for t in first['validation_tasks'])}. "
             f"The tables report seeds {report_seeds}, {disjoint}, each method at the configuration in the table "
             "below. Keys shared by all methods (inner optimizer, batch size, steps) were not tuned: every "
             "method had the same inner compute. Methods with nothing to tune ran their one configuration "
             "(the trials count, distinct configurations in brackets). Spread: the selected trial's max - min "
             "validation accuracy over the tuning seeds; margin: its lead over the runner-up (not separated when "
             "the margin is inside the spread). Edge: a selected value in the outer 10% of its log-range, or the "
             "smallest or largest K.", "",
             "| Method | Trials (distinct) | Search space | Selected | Validation (%) | Spread / margin (points) | "
             "Edge |",
             "|---|--:|---|---|--:|--:|---|"]
    for name in method_order(list(methods)):
        m = methods[name]
        space = "; ".join(f"`{k}` {v}" for k, v in m["search_space"].items()) or "nothing to tune"
        chosen = " ".join(f"`{o}`" for o in m["overrides"]) or "(default)"
        shown = shown_name(name, m.get("method", name))
        spread = ("" if m["spread"] is None else f"{100 * m['spread']:.2f}") + (
            "" if m["margin"] is None else f" / {100 * m['margin']:.2f}"
            + (" (not separated)" if m["separated"] is False else ""))
        edge = "; ".join(m["edges"]) if m["edges"] else ("not checked" if m["edges"] is None else "none")
        lines.append(f"| {shown} | {m['trials']} ({m['distinct_configurations']}) | {space} | {chosen} | "
                     f"{100 * m['score']:.2f} | {spread or '-'} | {edge} |")
    return [*lines, ""]


def choice_keys(protocol: dict, suite: str) -> frozenset[str]:
    """The tuned keys drawn from a list of values (``choice {...}``) rather than a range."""
    return frozenset(key for m in protocol.get(suite, {}).values() for key, dist in m["search_space"].items()
                     if dist.startswith("choice"))


def selection_gap(trials: pd.DataFrame, suite: str) -> Table:
    """Per method: the selected trial's target accuracy vs the oracle's (best on targets), tuning seeds."""
    rows = {}
    for method, group in trials[trials["suite"] == suite].groupby("method", sort=False):
        selected = group[group["selected"]].iloc[0]
        scored = group.dropna(subset=["target"])
        oracle = scored.loc[scored["target"].idxmax()] if not scored.empty else None
        pct = lambda v: MISSING if v is None or pd.isna(v) else f"{100 * v:.1f}"  # noqa: E731
        rows[shown_name(method, method.partition("@")[0])] = {
            "Selected trial": str(int(selected["trial"])),
            "Its target acc.": pct(selected["target"]),
            "Oracle trial": MISSING if oracle is None else str(int(oracle["trial"])),
            "Oracle target acc.": MISSING if oracle is None else pct(oracle["target"]),
            "Gap (points)": MISSING if oracle is None or pd.isna(selected["target"])
            else f"{100 * (oracle['target'] - selected['target']):.1f}",
        }
    cells = pd.DataFrame.from_dict(rows, orient="index")
    false = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    caption = (f"Selection gap on {suite}: mean target accuracy (%) over the tuning seeds of the trial selected on "
               "validation tasks, and of the oracle trial, the best on the targets themselves. The gap is how much "
               "selecting on the test targets would have flattered each method; the reported tables use the "
               "selected trial at fresh seeds.")
    return Table(cells, false, false.copy(), caption, f"tab:selection_gap_{suite}")
