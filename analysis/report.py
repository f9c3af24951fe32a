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
from pathlib import Path

import pandas as pd
import yaml

import benchmark
from analysis import archive, plots, protocol
from benchmark import logs
from analysis.collect import NOT_RECORDED, Collection, collect, without_seeds
from analysis.sections import suite_section

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




def layout_line(runs: pd.DataFrame) -> str:
    """How the runs ran, from runs.csv's layout columns, counted per distinct layout: wall times
    compare only within one, and compiled and eager runs differ in the last bits."""
    if runs.empty or "compile" not in runs:
        return "How the runs ran: not recorded."
    per_run = runs.drop_duplicates("run_dir")

    def words(compile, threads, cpu) -> str:
        mode = {"true": "compiled", "false": "eager"}.get(str(compile).lower(), "compile not recorded")
        if str(threads) == NOT_RECORDED:
            count = "threads not recorded"
        else:
            count = f"{threads} torch thread{'' if str(threads) == '1' else 's'}"
        return f"{mode}, {count}, CPU {'not recorded' if str(cpu) == NOT_RECORDED else cpu}"

    groups = per_run.groupby(["compile", "threads", "cpu"], sort=False, dropna=False).size()
    parts = [f"{n} run{'s' if n > 1 else ''} {words(*key)}" for key, n in groups.items()]
    line = "How the runs ran (runs.csv's `compile`, `threads`, `cpu`): " + "; ".join(parts) + "."
    if len(parts) > 1:
        line += (" Wall times (`wall_seconds`) compare only within one of these, and compiled and eager"
                 " runs differ in the last bits.")
    return line


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
             layout_line(runs), "",
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
