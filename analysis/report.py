"""``python -m analysis.report <results dir> [--out DIR]``: tables, figures and CSVs from run folders.

Reads every complete run folder under the results directory (diverged ones, incomplete
ones and those whose files do not parse or agree with their summary.json are skipped and
listed apart), writes ``runs.csv``, ``curves.csv``, ``training.csv``, the figures (PNG +
PDF), the LaTeX tables and ``summary.md`` into a temporary folder, and only then swaps it
in for the old report, so a report folder is always whole. ``skipped.json`` keeps the lists of
skipped runs, so that a report regenerated from its own folder still lists them.

Tables are computed from ``runs.csv`` / ``curves.csv`` as read back from disk, so every
number in them traces to those files. With several suites, each suite's files carry a
``_<suite>`` suffix.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

import benchmark
from analysis import archive, horizon, horizon_plots, plots, protocol, tables, verdicts
from benchmark import logs
from analysis.collect import Collection, collect, row_labels, without_seeds

CSV_OPTIONS = {"keep_default_na": False, "na_values": [""]}  # a target named "NA" stays a name
# Always text, whatever they hold: a commit or hash of digits only, phi_step "100" beside "final".
TEXT_COLUMNS = ["method", "display", "variant", "suite", "target", "phi_step", "task", "git_commit",
                "config_hash", "run_dir", "body"]
MARKER = "summary.md"  # a folder holding it is a report this command may replace
KEPT = (archive.ARCHIVE,)  # not written by a report, but kept when one is replaced: the raw runs behind a reference
SOURCE = re.compile(r"^From `([^`]*)`", re.MULTILINE)  # summary.md's provenance: the results folder it was made from
SKIPPED = "skipped.json"  # the skipped runs' lists, which no CSV holds
SKIPPED_KINDS = ("diverged", "incomplete", "unreadable")
CONF = Path(benchmark.__file__).resolve().parent / "conf"  # its selected/ holds the committed selections
log = logging.getLogger("lsml")


def hyperparameter_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if "." in c]  # dotted config keys


def read_csv(path: Path) -> pd.DataFrame:
    """A report CSV with the dtypes collect gave it, so writing it again gives the same bytes.

    Hyperparameter columns get collect's nullable dtypes back: a column with gaps (scratch
    has no reset_every) would otherwise read as float, K=5 as 5.0."""
    df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, **CSV_OPTIONS)
    swept = hyperparameter_columns(df)
    if swept:
        df[swept] = df[swept].convert_dtypes()
    return df


def write_csvs(collection: Collection, out: Path) -> dict[str, pd.DataFrame]:
    """Write the tidy CSVs and read them back: the tables are built from exactly these bytes."""
    frames = {"runs": collection.runs, "curves": collection.curves, "training": collection.training,
              "validation": collection.validation, "limited": collection.limited, "episodes": collection.episodes}
    back = {}
    for name, df in frames.items():
        if df.empty:
            continue
        df.to_csv(out / f"{name}.csv", index=False)
        back[name] = read_csv(out / f"{name}.csv")
    if collection.skipped_known:
        skipped = {kind: getattr(collection, kind) for kind in SKIPPED_KINDS}
        (out / SKIPPED).write_text(json.dumps(skipped, indent=1) + "\n")
    return back


def of_suite(frames: dict[str, pd.DataFrame], name: str, suite: str) -> pd.DataFrame:
    df = frames.get(name)
    return pd.DataFrame() if df is None else df[df["suite"] == suite]


def suite_section(suite: str, frames: dict[str, pd.DataFrame], swept: list[str], style: dict, out: Path,
                  suffix: str) -> list[str]:
    """One suite's tables and figures; returns its Markdown lines."""
    runs, curves, training = (of_suite(frames, name, suite) for name in ("runs", "curves", "training"))
    targets = tables.targets_of(runs)

    accuracy = tables.accuracy_table(runs, suite)
    steps = tables.steps_to_95(runs, curves, suite)
    agg, imp = tables.aggregates(runs)
    agg.to_csv(out / f"aggregate{suffix}.csv", index=False)
    imp.to_csv(out / f"improvement{suffix}.csv", index=False)
    aggregate, improvement = tables.aggregate_table(agg, suite), tables.improvement_table(imp, suite)
    for name, table in (("accuracy", accuracy), ("steps_to_95", steps), ("aggregate", aggregate),
                        ("improvement", tables.improvement_table(imp, suite, intervals=False))):
        (out / f"{name}{suffix}.tex").write_text(tables.to_latex(table))
    tuned = protocol.read(out)
    head: list[str] = []
    if tuned and suite in tuned[0]:
        gap = protocol.selection_gap(tuned[1], suite)
        (out / f"selection_gap{suffix}.tex").write_text(tables.to_latex(gap))
        head = [*protocol.paragraph(tuned[0], suite, sorted(int(s) for s in pd.unique(runs["seed"]))),
                "### Selection gap", "", gap.caption, "", tables.to_markdown(gap), ""]

    # With a tune, the loss and convergence figures draw each method at its selection (one
    # solid line each); the rows of methods also run at other configurations (a K study) get a figure of
    # their own, so that neither figure needs a dozen lines.
    chosen = (horizon.selected_rows(runs, {m: v.get("overrides", []) for m, v in tuned[0][suite].items()})
              if head else set(row_labels(runs)))
    found = verdicts.verdicts(runs, imp, verdicts.pairs(runs, chosen))
    found.to_csv(out / f"verdicts{suffix}.csv", index=False)
    verdict = verdicts.table(found, suite)
    (out / f"verdicts{suffix}.tex").write_text(tables.to_latex(verdict))
    verdict_lines = [verdict.caption, "", tables.to_markdown(verdict, corner="X vs Y"), "",
                     f"Data: [verdicts{suffix}.csv](verdicts{suffix}.csv).", ""]
    (out / f"verdicts{suffix}.md").write_text("\n".join([f"# Verdicts on `{suite}`", "", *verdict_lines]))
    selected_style = {r: replace(s, linestyle="-", variant="") if head else s
                      for r, s in style.items() if r in chosen}
    varied = set(runs.loc[~row_labels(runs).isin(chosen), "method"])
    variant_style = {r: s for r, s in style.items()
                     if r in set(row_labels(runs[runs["method"].isin(varied)]))}
    no_curves = "no method meta-tested at two or more phi steps (metatest.at_steps)"
    lead, ref = (next((r for r in pd.unique(row_labels(runs[runs["method"] == m])) if r in chosen), None)
                 for m in ("ours", "reptile"))
    others = [r for r in pd.unique(row_labels(runs)) if r in chosen and r != lead]
    # (title, files or None, why a figure may be missing)
    figures = [
        ("Meta-training loss" + (", each method at its selection" if head else ""),
         plots.training_loss(training, selected_style, out, f"training_loss{suffix}"),
         "no metrics.jsonl rows with a loss"),
        ("Meta-convergence, mean over targets" + (", each method at its selection" if head else ""),
         plots.metaconvergence(curves, targets, selected_style, out, f"metaconvergence{suffix}"), no_curves),
        *[(f"Meta-convergence on {t}",
           plots.metaconvergence(curves, targets, selected_style, out, f"metaconvergence{suffix}_{t}", target=t),
           no_curves) for t in targets],
        *([("Meta-convergence, every configuration of the methods run at more than one",
            plots.metaconvergence(curves, targets, variant_style, out, f"metaconvergence_variants{suffix}"),
            no_curves)] if varied else []),
        ("Speed-up against threshold, CTS and Reptile at their selections",
         horizon_plots.speedup_vs_threshold(curves, targets, lead, ref, style, out, f"speedup_vs_threshold{suffix}")
         if lead and ref else None, "no CTS and Reptile runs"),
        ("Limited data: accuracy against training images per target class, each method at its selection",
         horizon_plots.limited_data(of_suite(frames, "limited", suite), runs, selected_style, out,
                                    f"limited_data{suffix}"), "no run set metatest.train_sizes"),
        ("Per-seed paired differences, CTS minus each method, final phi",
         horizon_plots.paired_differences(runs, lead, others, style, out, f"paired_differences{suffix}")
         if lead else None, "no CTS run"),
        ("Accuracy vs K", plots.accuracy_vs_k(runs, swept, style, out, f"accuracy_vs_K{suffix}"),
         "no method was run at two or more values of method.reset_every"),
        ("Sensitivity: validation accuracy of every tuning trial vs each tuned key",
         plots.sensitivity(tuned[1][tuned[1]["suite"] == suite], style, out, f"sensitivity{suffix}",
                           protocol.choice_keys(tuned[0], suite)) if head else None,
         "no tune given (--tune)"),
    ]
    lines = [f"## Suite `{suite}`", "", *head, "### Final meta-test accuracy", "", accuracy.caption, "",
             tables.to_markdown(accuracy), "", "### Aggregates over seeds and targets", "", aggregate.caption, "",
             tables.to_markdown(aggregate), "", f"Data: [aggregate{suffix}.csv](aggregate{suffix}.csv).", "",
             improvement.caption, "", tables.to_markdown(improvement, corner="P(row > column)"), "",
             f"Data: [improvement{suffix}.csv](improvement{suffix}.csv).", "",
             "### Verdicts", "", *verdict_lines,
             "### Inner steps to 95% of the best", "", steps.caption, "",
             tables.to_markdown(steps), "",
             *horizon_section(suite, runs, curves, of_suite(frames, "limited", suite), tuned, out, suffix),
             *episodes_section(suite, of_suite(frames, "episodes", suite), out, suffix),
             "### Figures", ""]
    for title, paths, why_not in figures:
        if paths:
            # The PDF lies beside the PNG in every report this writes, but git keeps the committed
            # references' PDFs out (.gitignore): named, not linked, so no link there is dead.
            lines += [f"- [{title}]({paths[0].name}) (also `{paths[1].name}`)  ", f"  ![{title}]({paths[0].name})"]
        else:
            lines.append(f"- {title}: not drawn ({why_not})")
    return [*lines, ""]


def horizon_section(suite: str, runs: pd.DataFrame, curves: pd.DataFrame, limited: pd.DataFrame,
                    tuned: tuple[dict, pd.DataFrame] | None, out: Path, suffix: str) -> list[str]:
    """Steps to reach Reptile's final accuracy, accuracy along the horizon, against K, and with
    few target images (see ``analysis.horizon``); each table that the runs allow."""
    targets = tables.targets_of(runs)
    by_row = horizon.seed_curves(curves, targets) if not curves.empty else {}
    overrides = (tuned[0].get(suite, {}).get(horizon.REFERENCE, {}).get("overrides", []) if tuned else [])
    reference = horizon.reference_row(by_row, runs, dict(o.split("=", 1) for o in overrides))
    found: list[tuple[str, str, tables.Table | None, str]] = []  # (title, file stem, table, why not)
    if reference:
        frame, threshold = horizon.steps_to_reach(curves, targets, reference)
        frame.to_csv(out / f"steps_to_reach{suffix}.csv", index=False)
        found.append(("Steps to reach Reptile's final accuracy", "steps_to_reach",
                      horizon.steps_to_reach_table(frame, threshold, reference, suite), ""))
    else:
        found.append(("Steps to reach Reptile's final accuracy", "steps_to_reach", None,
                      "no Reptile run with meta-tested checkpoints"))
    found += [
        ("Accuracy along the horizon", "horizon",
         horizon.horizon_table(curves, targets, suite) if by_row else None, "no meta-tested checkpoints"),
        ("Accuracy against K", "accuracy_vs_K", horizon.k_table(runs, suite),
         "no method was run at two or more values of method.reset_every"),
        ("Limited target data", "limited", horizon.limited_table(limited, runs, suite),
         "no run set metatest.train_sizes"),
    ]
    lines = ["### Long horizon", ""]
    for title, stem, table, why_not in found:
        if table is None:
            lines += [f"- {title}: not computed ({why_not}).", ""]
            continue
        (out / f"{stem}{suffix}.tex").write_text(tables.to_latex(table))
        data = f" Data: [{stem}{suffix}.csv]({stem}{suffix}.csv)." if stem == "steps_to_reach" else ""
        lines += [f"#### {title}", "", table.caption + data, "", tables.to_markdown(table), ""]
    return lines


def episodes_section(suite: str, episodes: pd.DataFrame, out: Path, suffix: str) -> list[str]:
    """The few-shot episodes' tables (``metatest.episodes`` or ``benchmark.episodes``), if any run has them."""
    if episodes.empty:
        return ["### Few-shot episodes", "", "- Not computed (no run has metatest.episodes rows).", ""]
    lines = ["### Few-shot episodes", ""]
    for k, table in enumerate(tables.episodes_tables(episodes, suite)):
        stem = f"episodes{suffix}" + (f"_{k}" if k else "")
        (out / f"{stem}.tex").write_text(tables.to_latex(table))
        lines += [table.caption + " Data: [episodes.csv](episodes.csv).", "",
                  tables.to_markdown(table), ""]
    return lines


def write_report(results: str | Path, collection: Collection, out: Path) -> None:
    frames = write_csvs(collection, out)
    runs = frames["runs"]
    style = plots.styles(runs)  # one colour per method across suites and figures
    suites = list(pd.unique(runs["suite"]))
    n_runs = runs["run_dir"].nunique()
    skipped = (f"skipped {len(collection.diverged)} diverged, {len(collection.incomplete)} incomplete, "
               f"{len(collection.unreadable)} unreadable" if collection.skipped_known else
               f"skipped runs not known (regenerated from the CSVs of a report without {SKIPPED})")
    lines = ["# lsml-bench report", "",
             f"From `{results}`: {n_runs} complete runs; {skipped}. "
             "Data: [runs.csv](runs.csv) (final phi, run x target), [curves.csv](curves.csv) "
             "(accuracy along meta-training), [training.csv](training.csv) (meta-training logs)"
             + (", [validation.csv](validation.csv) (validation tasks: for selection, never results)"
                if not collection.validation.empty else "") + ".", "",
             "Swept hyperparameters (columns of runs.csv): "
             + (", ".join(f"`{k}`" for k in collection.swept) or "none") + ".", ""]
    for suite in suites:
        suffix = f"_{suite}" if len(suites) > 1 else ""
        lines += suite_section(suite, frames, collection.swept, style, out, suffix)
    none = "None." if collection.skipped_known else "Not known."
    lines += ["## Diverged runs (excluded)", ""]
    lines += [f"- `{line}`" for line in collection.diverged] or [none]
    lines += ["", "## Skipped incomplete runs (no `done`)", ""]
    lines += [f"- `{path}`" for path in collection.incomplete] or [none]
    if collection.unreadable:
        lines += ["", "## Skipped unreadable runs", "", *[f"- `{problem}`" for problem in collection.unreadable]]
    (out / MARKER).write_text("\n".join(lines) + "\n")


def remove_stale(out: Path, unnamed_after_s: float = 86400) -> None:
    """Delete the half-written folders a killed report left beside ``out`` (``.<name>.tmp-<pid>-*``,
    ``.<name>.old-<pid>``) whose process is gone; one without a pid (an older version's), once a day old."""
    for path in out.parent.glob(f".{out.name}.*"):
        kind, _, rest = path.name[len(out.name) + 2:].partition("-")
        if kind not in ("tmp", "old") or not path.is_dir():
            continue
        pid = rest.split("-")[0]
        stale = (not _alive(int(pid))) if pid.isdigit() else time.time() - path.stat().st_mtime > unnamed_after_s
        if stale:
            log.warning(f"removing {path}, left by a report that was stopped")
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
def tuning_seeds(*folders: Path | None) -> dict[int, Path]:
    """Each tuning seed that a selection file under ``folders`` names (``selected/<suite>/<method>.yaml``,
    as benchmark.tune writes them and benchmark/conf/selected/ holds the committed ones), with one such file."""
    seeds: dict[int, Path] = {}
    for folder in folders:
        if folder is None or not folder.is_dir():
            continue
        for path in sorted(folder.rglob("selected/*/*.yaml")):
            try:
                record = yaml.safe_load(path.read_text())
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            for seed in (record.get("tuning_seeds") or []) if isinstance(record, dict) else []:
                seeds.setdefault(int(seed), path)
    return seeds


def replace_dir(new: Path, out: Path) -> None:
    """Move ``new`` to ``out``; an old report there is renamed away first, then deleted
    (its ``KEPT`` files are carried over first)."""
    for name in KEPT:
        if (out / name).is_file() and not (new / name).exists():
            shutil.copy2(out / name, new / name)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        new.rename(out)
        shutil.rmtree(old)
    else:
        new.rename(out)


def unwritable(out: Path) -> str | None:
    """Why a report cannot be written to ``out`` (a file there or above it, a read-only folder), or None."""
    here = out
    while not here.exists():
        here = here.parent
    if not here.is_dir():
        return f"{here} is a file, not a folder" + (f" (for {out})" if here != out else "")
    if not os.access(here, os.W_OK | os.X_OK):
        return f"{out}: cannot write in {here} (read-only, or not writable by this user)"
    return None


def duplicates(collection: Collection) -> int:
    """Runs that share method, variant and seed (say, re-run with other at_steps): averaged."""
    keys = ["suite", "method", "variant", "seed", "target"]
    return int(collection.runs.duplicated(keys).sum())


def from_report(folder: Path) -> Collection:
    """A committed report regenerates from its own CSVs (no run folders needed): the
    tables and figures are functions of runs.csv, curves.csv and training.csv, and the
    skipped runs are listed in skipped.json (a report written before it existed lacks it)."""
    frames = {name: read_csv(folder / f"{name}.csv") if (folder / f"{name}.csv").exists()
              else pd.DataFrame() for name in ("runs", "curves", "training", "validation", "limited", "episodes")}
    swept = hyperparameter_columns(frames["runs"])
    tidy = dict(runs=frames["runs"], curves=frames["curves"], training=frames["training"], swept=swept,
                validation=frames["validation"], limited=frames["limited"], episodes=frames["episodes"])
    if not (folder / SKIPPED).exists():
        return Collection(**tidy, skipped_known=False)
    skipped = json.loads((folder / SKIPPED).read_text())
    return Collection(**tidy, **{kind: list(skipped.get(kind, [])) for kind in SKIPPED_KINDS})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results directory (searched recursively for run folders), "
                        "or a report folder, which is regenerated from its raw runs (runs.tar.gz) or else its CSVs")
    parser.add_argument("--out", type=Path, help="report folder (default: <results>/report)")
    parser.add_argument("--tune", type=Path, help="the results folder of the benchmark.tune that chose the runs' "
                        "hyperparameters: adds the protocol, the selection gap and the sensitivity figure")
    parser.add_argument("--pool", action="append", default=[], metavar="KEY",
                        help="pool runs that differ only in this config key into one row (e.g. train.steps: runs at "
                        "several horizons, which are otherwise rows of their own); repeatable")
    parser.add_argument("--log-level", default="INFO", choices=logs.LEVELS, help="messages on stderr (default INFO)")
    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    start = time.perf_counter()
    results = args.results.resolve()
    if not results.is_dir():
        print(f"error: {results} is not a directory", file=sys.stderr)
        return 2
    is_report = (results / MARKER).exists() and (results / "runs.csv").exists()
    out = (args.out or (results if is_report else results / "report")).resolve()
    if problem := unwritable(out):
        print(f"error: --out: {problem}", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        print(f"error: {out} exists and is not a report folder; refusing to replace it", file=sys.stderr)
        return 2

    # The path as the user gave it; regenerated in place, the report keeps the one it was made
    # from, so that regenerating a committed reference leaves git clean.
    source = (found.group(1) if is_report and (found := SOURCE.search((results / MARKER).read_text()))
              else str(args.results))
    try:  # a report with its raw runs beside it (a reference) regenerates from them, else from its CSVs
        with archive.unpacked(results, source) if is_report else nullcontext() as raw:
            collection = (collect(raw, pooled=tuple(args.pool)) if raw else
                          from_report(results) if is_report else collect(results, pooled=tuple(args.pool)))
    except archive.ArchiveError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seeds = tuning_seeds(results, args.tune, CONF)
    present = set() if collection.runs.empty else {int(s) for s in pd.unique(collection.runs["seed"])}
    hit = sorted(present & set(seeds))
    collection, left = without_seeds(collection, set(seeds))
    if left:
        log.warning(f"left out {left} runs on tuning seeds {hit} (named in {seeds[hit[0]]}"
                    f"{' and others' if len({seeds[s] for s in hit}) > 1 else ''}): a tuning seed chooses "
                    "hyperparameters, so its runs are read with --tune, never pooled into results")
        if collection.runs.empty:
            print(f"error: every complete run under {results} is on a tuning seed {hit}; "
                  "give a tune's folder with --tune", file=sys.stderr)
            return 1
    for line in collection.diverged:
        log.warning(f"skipped diverged run: {line}")
    for path in collection.incomplete:
        log.warning(f"skipped incomplete run (no done): {path}")
    for problem in collection.unreadable:
        log.warning(f"skipped unreadable run: {problem}")
    if collection.runs.empty:
        print(f"error: no complete run folders under {results}", file=sys.stderr)
        return 1
    if n := duplicates(collection):
        log.warning(f"{n} run x target rows repeat a method/variant/seed; tables average them")

    try:
        tuned = protocol.read_tune(args.tune.resolve()) if args.tune else None
    except protocol.ProtocolError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's private 0700 would outlive the rename
    try:
        if tuned:
            protocol.write(tmp, *tuned)
        elif is_report and (kept := protocol.read(results)):  # regenerated: keep its protocol
            protocol.write(tmp, *kept)
        write_report(source, collection, tmp)
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = collection.runs["run_dir"].nunique()
    print(f"report of {n} runs written to {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
