"""Read run folders into tidy DataFrames: one row per run x target, per curve point, per log row.

Targets are the results. Validation tasks (``suite.validation``, used only to select
hyperparameters) go to a frame of their own, ``validation.csv``, and never into the
tables of results.

Only complete run folders are read, and only when their files parse and agree with their
summary.json (see ``analysis.rundirs``); diverged, incomplete and unreadable folders are
listed, never half-read. Everything the tables and figures show is computed from the
frames built here, so each number traces back to ``runs.csv`` (final accuracies) or
``curves.csv`` (accuracy along meta-training).

Runs of one method that differ in a swept hyperparameter (say ``method.reset_every``)
are different *variants*; the ``variant`` column names what sets them apart within
their method ("K=5"), and tables and figures keep variants apart.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

import methods  # noqa: F401  (registers every method, for row order and display names)
from analysis.rundirs import Unreadable, diverged_line, find_run_dirs, load_run, rel
from methods.base import METHODS, display_name

# Config keys that never define a hyperparameter setting: where files go, how processes
# are laid out (storage.NOT_IDENTITY), the seed (what we average over), the suite's task
# lists (the table's columns), and what is logged or saved along the way, which leaves
# the final phi unchanged.
NOT_SWEPT_PREFIXES = (
    "results_dir", "data.root", "data.cache_dir", "data.download", "runner.",
    "seed", "method.name", "suite.", "metatest.at_steps", "metatest.validation_at_steps", "metatest.train_sizes",
    "metatest.episode",
    "checkpoint.",
    "train.log_every", "log.",
)
# Shown even when constant, because every reader of a table asks for them.
ALWAYS_SHOWN = ("method.meta_lr", "method.reset_every")
# Short names for variant labels; other keys use their last dotted component.
SHORT_NAMES = {"method.reset_every": "K", "train.steps": "steps"}
# Named in a label whenever they vary, even where another key already tells the runs apart:
# runs at two horizons are two experiments, and a row must say which ("K=100, steps=2000").
ALWAYS_LABELLED = ("train.steps",)

ID_COLUMNS = ["method", "display", "variant", "suite", "seed"]
# What episodes.csv keeps of a ``protocol: episodes`` row of metatest.jsonl (benchmark/episodes.py).
EPISODE_COLUMNS = ["target", "ways", "shots", "queries", "episodes", "body", "episode_steps", "episode_lr",
                   "accuracy", "sd", "ci95"]


@dataclass
class Collection:
    """All complete runs under one results directory, as tidy frames."""

    runs: pd.DataFrame  # runs.csv: run x target, final phi
    curves: pd.DataFrame  # curves.csv: run x target x phi step
    training: pd.DataFrame  # training.csv: run x logged step x source task
    swept: list[str]  # the hyperparameter columns of runs.csv
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)  # validation.csv: run x validation task
    limited: pd.DataFrame = field(default_factory=pd.DataFrame)  # limited.csv: run x target x train_size (final phi)
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame)  # episodes.csv: run x target x shots (final phi)
    incomplete: list[str] = field(default_factory=list)  # run folders with neither ``done`` nor ``diverged``
    diverged: list[str] = field(default_factory=list)  # "folder: ours seed 0 diverged at ..." per diverged run
    unreadable: list[str] = field(default_factory=list)  # "folder/file[:line]: error" for done folders skipped
    skipped_known: bool = True  # False when regenerated from a report that did not record the three lists


def method_order(names: list[str]) -> list[str]:
    """Registry order first; unknown methods after them, alphabetically."""
    known = [n for n in METHODS.names() if n in names]
    return known + sorted(set(names) - set(known))


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"method": {"meta_lr": 0.1}}`` -> ``{"method.meta_lr": 0.1}``; lists become JSON text."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else value
    return flat


def swept_keys(configs: list[dict[str, Any]], pooled: tuple[str, ...] = ()) -> list[str]:
    """Flattened keys whose (present) values differ across runs of one suite, plus ALWAYS_SHOWN;
    ``pooled`` keys (``analysis.report --pool``) never set runs apart."""
    keys: dict[str, set] = {}
    for flat in configs:
        for key, value in flat.items():
            keys.setdefault(key, set()).add(json.dumps(value))
    swept = {k for k, values in keys.items()
             if len(values) > 1 and not k.startswith(NOT_SWEPT_PREFIXES) and k not in pooled}
    swept |= {k for k in ALWAYS_SHOWN if k in keys}
    return sorted(swept)


def inner_steps_per_step(run: dict) -> float:
    """How many inner steps one phi step stands for: the number of learners the method ran.

    The logged metrics say it exactly (a method may train fewer learners for longer, as
    fine-tuning does); without them, fall back to summary inner_steps / train.steps."""
    for row in run["metrics"]:
        if row.get("step"):
            return row["inner_steps"] / row["step"]
    steps = (run["config"].get("train") or {}).get("steps")
    return run["summary"]["inner_steps"] / steps if steps else 0.0


def _key(value: Any) -> str:
    """A hashable, type-faithful stand-in for a config value (NaN and None alike)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return "null"
    return json.dumps(value.item() if hasattr(value, "item") else value)


def label_keys(keys: list[str], records: list[dict]) -> list[str]:
    """The keys that name a method's variants: those varying across ``records``, short-named
    ones (K) first, minus any key that is a one-to-one function of a key already kept
    (Reptile's aggregate_every follows K by default; "K=5" says it all)."""
    def values(k: str) -> list[str]:
        return [_key(r.get(k)) for r in records]

    varying = [k for k in keys if len(set(values(k))) > 1]
    varying.sort(key=lambda k: (k not in SHORT_NAMES, keys.index(k)))
    kept: list[str] = []
    for k in varying:
        tied = any(len(set(zip(values(j), values(k)))) == len(set(values(j))) == len(set(values(k))) for j in kept)
        if not tied or k in ALWAYS_LABELLED:
            kept.append(k)
    return kept


def variant_label(flat: dict, varying: list[str]) -> str:
    parts = []
    for key in varying:
        name = SHORT_NAMES.get(key, key.rsplit(".", 1)[-1])
        value = flat.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a CSV column with gaps reads 5 back as 5.0
        parts.append(f"{name}={'n/a' if _key(value) == 'null' else value}")
    return ", ".join(parts)


def _sort_value(value: Any) -> tuple:
    """Sort numbers numerically and before text; missing values last."""
    if value is None or (isinstance(value, float) and value != value):
        return (2, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def _describe(runs: list[dict], root: Path, pooled: tuple[str, ...] = ()) -> tuple[list[dict], list[str]]:
    """Per run: its identifying columns (method, variant, swept values...); and the swept keys."""
    flats = [flatten(r["config"]) for r in runs]
    swept: set[str] = set()
    by_suite: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        by_suite.setdefault(r["summary"]["suite"], []).append(i)
    infos: list[dict] = [{} for _ in runs]
    for idx in by_suite.values():
        keys = swept_keys([flats[i] for i in idx], pooled)
        swept |= set(keys)
        by_method: dict[str, list[int]] = {}
        for i in idx:
            by_method.setdefault(runs[i]["summary"]["method"], []).append(i)
        for members in by_method.values():
            # Within a method, only the keys that change between its runs name a variant.
            varying = label_keys(keys, [flats[i] for i in members])
            for i in members:
                s = runs[i]["summary"]
                infos[i] = {
                    "method": s["method"], "display": display_name(s["method"]),
                    "variant": variant_label(flats[i], varying), "suite": s["suite"], "seed": s["seed"],
                    **{k: flats[i].get(k) for k in keys},
                    "_sort": tuple(_sort_value(flats[i].get(k)) for k in varying),
                    "config_hash": s.get("run_id") or runs[i]["folder"].name,
                    "run_dir": runs[i]["folder"].relative_to(root).as_posix(),
                }
    return infos, sorted(swept)


NOT_RECORDED = "not recorded"


def layout_columns(summary: dict) -> dict:
    """What runs.csv says of how a run ran: ``runner.compile``, torch threads and the CPU's
    model, from summary.json's layout (a run from before a field was recorded: "not recorded").
    Wall times compare only between equal layouts, and compiled and eager results differ in
    the last bits."""
    layout = summary.get("layout") or {}
    return {key: layout.get(key, NOT_RECORDED) for key in ("compile", "threads", "cpu")}


def collect(root: str | Path, only: set[Path] | None = None, pooled: tuple[str, ...] = ()) -> Collection:
    """Every complete run under ``root`` (or only those folders) as runs / curves / training frames.
    Runs that differ in a config key are different variants, unless the key is in ``pooled``."""
    root = Path(root)
    complete, diverged, incomplete = find_run_dirs(root)
    if only is not None:
        only = {Path(p).resolve() for p in only}
        complete, diverged, incomplete = ([f for f in group if f.resolve() in only]
                                          for group in (complete, diverged, incomplete))
    runs, unreadable = [], []
    for folder in complete:
        try:
            runs.append(load_run(folder, root))
        except Unreadable as e:
            unreadable.append(str(e))
    infos, swept = _describe(runs, root, pooled)
    id_cols = ID_COLUMNS + swept
    run_rows, curve_rows, train_rows, validation_rows, limited_rows, episode_rows = [], [], [], [], [], []
    for run, info in zip(runs, infos):
        s = run["summary"]
        ident = {k: info.get(k) for k in id_cols}
        tail = {"config_hash": info["config_hash"], "run_dir": info["run_dir"]}
        for target, acc in s["target_accuracy"].items():
            run_rows.append({**ident, "target": target, "accuracy": acc, "inner_steps": s["inner_steps"],
                             "wall_seconds": s["wall_seconds"], **layout_columns(s),
                             "git_commit": s.get("git_commit", "unknown"),
                             **tail, "_sort": info["_sort"]})
        for task, acc in (s.get("validation_accuracy") or {}).items():
            validation_rows.append({**ident, "task": task, "accuracy": acc, **tail, "_sort": info["_sort"]})
        per_step = inner_steps_per_step(run)
        for row in run["metatest"]:
            if row.get("role", "target") != "target":  # validation tasks select; they are not results
                continue
            if row.get("protocol") == "episodes":  # few-shot episodes: a table of their own, never a curve
                episode_rows.append({**ident, **{k: row.get(k) for k in EPISODE_COLUMNS}, **tail,
                                     "_sort": info["_sort"]})
                continue
            if row.get("train_size") is not None:  # limited data: the final phi on fewer target images
                limited_rows.append({**ident, "target": row["target"], "train_size": row["train_size"],
                                     "accuracy": row["accuracy"], **tail, "_sort": info["_sort"]})
                continue
            final = row["phi_step"] == "final"
            inner = s["inner_steps"] if final else row["phi_step"] * per_step
            curve_rows.append({**ident, "target": row["target"], "phi_step": str(row["phi_step"]),
                               "inner_steps": inner, "accuracy": row["accuracy"], **tail, "_sort": info["_sort"]})
        for row in run["metrics"]:
            train_rows.append({**ident, "step": row["step"], "inner_steps": row["inner_steps"],
                               "wall_seconds": row.get("wall_seconds"), "task": row["task"],
                               "loss": row["loss"], "acc": row.get("acc"), **tail, "_sort": info["_sort"]})
    return Collection(
        runs=_ordered(_frame(run_rows, swept), []),  # targets stay in suite order
        curves=_ordered(_frame(curve_rows, swept), ["inner_steps"]),
        training=_ordered(_frame(train_rows, swept), ["step", "task"]),
        swept=swept,
        validation=_ordered(_frame(validation_rows, swept), []),
        limited=_ordered(_frame(limited_rows, swept), ["train_size"]),
        episodes=_ordered(_frame(episode_rows, swept), ["shots"]),
        incomplete=[rel(f, root) for f in incomplete],
        diverged=[diverged_line(f, root) for f in diverged],
        unreadable=unreadable,
    )


def without_seeds(collection: Collection, seeds: set[int]) -> tuple[Collection, int]:
    """The collection without the runs on ``seeds`` (tuning seeds), and how many runs that left out."""
    runs = collection.runs
    if runs.empty or not seeds:
        return collection, 0
    dropped = runs.loc[runs["seed"].isin(seeds), "run_dir"].nunique()
    frames = {name: (df[~df["seed"].isin(seeds)].reset_index(drop=True) if not df.empty else df)
              for name in ("runs", "curves", "training", "validation", "limited", "episodes")
              for df in [getattr(collection, name)]}
    return replace(collection, **frames), int(dropped)


def _frame(rows: list[dict], swept: list[str]) -> pd.DataFrame:
    """Swept values keep their type where some runs lack the key (K=5 stays 5, not 5.0)."""
    df = pd.DataFrame(rows)
    if not df.empty and swept:
        df[swept] = df[swept].convert_dtypes()
    return df


def _ordered(df: pd.DataFrame, within: list[str]) -> pd.DataFrame:
    """Suite, registry order of methods, variant values, seed, then ``within``; a clean index."""
    if df.empty:
        return df
    order = {m: i for i, m in enumerate(method_order(list(df["method"].unique())))}
    df = df.assign(_m=df["method"].map(order))
    df = df.sort_values(["suite", "_m", "_sort", "seed", *within], kind="stable")
    return df.drop(columns=["_m", "_sort"]).reset_index(drop=True)


def same_value(a, b) -> bool:
    """A config value read back from a CSV equals an override's text (0.1 == "0.1", 100 == "100")."""
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return str(a) == str(b)


def at_overrides(frame: pd.DataFrame, overrides: list[str]) -> pd.DataFrame:
    """The rows of ``frame`` at a configuration given as ``key=value`` overrides (keys that are not
    columns are ignored)."""
    keep = pd.Series(True, index=frame.index)
    for key, value in (o.split("=", 1) for o in overrides):
        if key in frame.columns:
            keep &= frame[key].map(lambda a, v=value: same_value(a, v))
    return frame[keep]


def row_labels(df: pd.DataFrame) -> pd.Series:
    """A table row / legend entry: "CTS (ours)", or "CTS (ours), K=5" when a method has variants."""
    variant = df["variant"].fillna("").astype(str)
    return df["display"].where(variant == "", df["display"] + ", " + variant)


def per_run_curves(curves: pd.DataFrame, targets: list[str] | None = None) -> pd.DataFrame:
    """Per run (row, seed) and phi step: inner steps and accuracy in percent, averaged over
    ``targets`` (NaN when a run lacks one of them: a mean over fewer targets would not compare)."""
    df = curves.assign(row=row_labels(curves), accuracy=100 * curves["accuracy"])
    keys = ["row", "method", "seed", "phi_step"]
    targets = targets if targets is not None else list(pd.unique(df["target"]))
    wide = df.pivot_table(index=keys, columns="target", values="accuracy", aggfunc="mean")
    wide = wide.reindex(columns=targets)
    out = wide.mean(axis=1, skipna=False).rename("accuracy").reset_index()
    steps = df.groupby(keys)["inner_steps"].mean().rename("inner_steps")
    return out.join(steps, on=keys)
