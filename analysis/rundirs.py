"""Find run folders under a results directory and read them, trusting nothing.

A folder holding ``config.yaml`` or ``summary.json`` is a run (see ``benchmark/runtime/storage.py``):
complete when its ``done`` marker exists, diverged when its ``diverged`` marker does (a
non-finite loss or phi: its summary.json says where, with ``"status": "diverged"`` and no
accuracies), incomplete with neither. A complete run is read only when every file parses
and agrees with its summary.json; otherwise ``Unreadable`` says which file (and line) is
wrong and how, e.g. "toy/ours/<id>/metrics.jsonl:7: Expecting ',' delimiter (column 20)".
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml

# What analysis.collect reads from each file: a summary or row without one is unreadable.
SUMMARY_KEYS = ("method", "suite", "seed", "inner_steps", "wall_seconds", "target_accuracy")
ROW_KEYS = {"metrics.jsonl": ("step", "inner_steps", "task", "loss"),
            "metatest.jsonl": ("target", "phi_step", "accuracy")}


class Unreadable(ValueError):
    """A run folder's file that does not parse or disagrees with summary.json; the message names it."""


def find_run_dirs(root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """Every folder holding a ``config.yaml`` or ``summary.json``, split into (complete,
    diverged, incomplete). A ``diverged`` marker wins over ``done``: such a run is never averaged in.

    Hidden folders are not runs (Hydra's ``.hydra/config.yaml``, a report being written)."""
    found = {p.parent for pattern in ("config.yaml", "summary.json") for p in root.rglob(pattern)}
    folders = sorted(f for f in found if not any(part.startswith(".") for part in f.relative_to(root).parts))
    diverged = [f for f in folders if (f / "diverged").exists()]
    complete = [f for f in folders if (f / "done").exists() and f not in diverged]
    return complete, diverged, [f for f in folders if f not in complete and f not in diverged]


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _text(path: Path, root: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise Unreadable(f"{rel(path, root)}: missing") from None
    except OSError as e:
        raise Unreadable(f"{rel(path, root)}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise Unreadable(f"{rel(path, root)}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _strict(token: str):
    """NaN and Infinity parse in Python's json, but are not JSON: a writer other than ours, or damage."""
    raise ValueError(f"{token} is not strict JSON")


def read_json(path: Path, root: Path) -> dict:
    try:
        data = json.loads(_text(path, root), parse_constant=_strict)
    except json.JSONDecodeError as e:
        raise Unreadable(f"{rel(path, root)}: {e.msg} (line {e.lineno} column {e.colno})") from None
    except ValueError as e:
        raise Unreadable(f"{rel(path, root)}: {e}") from None
    if not isinstance(data, dict):
        raise Unreadable(f"{rel(path, root)}: not a JSON object")
    return data


def read_jsonl(path: Path, root: Path) -> list[dict]:
    """The rows of a JSON-lines file ([] when there is none); a bad line raises, naming file and line."""
    if not path.exists():
        return []
    rows, name = [], rel(path, root)
    for n, line in enumerate(_text(path, root).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_strict)
        except json.JSONDecodeError as e:
            raise Unreadable(f"{name}:{n}: {e.msg} (column {e.colno})") from None
        except ValueError as e:
            raise Unreadable(f"{name}:{n}: {e}") from None
        if not isinstance(row, dict):
            raise Unreadable(f"{name}:{n}: not a JSON object")
        if missing := [k for k in ROW_KEYS.get(path.name, ()) if k not in row]:
            raise Unreadable(f"{name}:{n}: no {', '.join(missing)}")
        rows.append(row)
    return rows


def load_run(folder: Path, root: Path) -> dict:
    """One complete run folder as plain data (no checkpoints are read), checked against its summary."""
    try:
        config = yaml.safe_load(_text(folder / "config.yaml", root))
    except yaml.YAMLError as e:
        raise Unreadable(f"{rel(folder / 'config.yaml', root)}: {' '.join(str(e).split())}") from None
    if not isinstance(config, dict):
        raise Unreadable(f"{rel(folder / 'config.yaml', root)}: not a mapping")
    run = {
        "folder": folder,
        "config": config,
        "summary": read_json(folder / "summary.json", root),
        "metrics": read_jsonl(folder / "metrics.jsonl", root),
        "metatest": read_jsonl(folder / "metatest.jsonl", root),
    }
    if problem := disagreement(run, root):
        raise Unreadable(problem)
    return run


def disagreement(run: dict, root: Path) -> str | None:
    """Why a run's files do not add up to its summary.json (a copy cut short, a writer stopped
    midway), or None. A run that logs no metrics.jsonl (scratch, a method that logs nothing) passes."""
    s, folder = run["summary"], run["folder"]
    summary = rel(folder / "summary.json", root)
    if missing := [k for k in SUMMARY_KEYS if k not in s]:
        return f"{summary}: no {', '.join(missing)}"
    if s.get("status", "done") != "done":  # older summaries have no status: they are finished runs
        return f"{summary}: status {s['status']!r}, but the folder has done"
    if not isinstance(s["target_accuracy"], dict):
        return f"{summary}: target_accuracy is not a mapping of target to accuracy"
    metrics, rows = rel(folder / "metrics.jsonl", root), run["metrics"]
    if s["inner_steps"] and (folder / "metrics.jsonl").exists():
        last = rows[-1]["inner_steps"] if rows else 0
        if last != s["inner_steps"]:
            return f"{metrics}: ends at inner step {last}, summary.json says {s['inner_steps']} (truncated?)"
        # Each log writes one row per source task at once: a last step with fewer rows was cut.
        per_step = Counter(r["step"] for r in rows)
        first, final = rows[0]["step"], rows[-1]["step"]
        if per_step[final] < per_step[first]:
            return f"{metrics}: {per_step[final]} rows at step {final}, {per_step[first]} at step {first} (truncated?)"
    finals = {r["target"] for r in run["metatest"]  # the full protocol's rows, which summary.json reports
              if r["phi_step"] == "final" and r.get("train_size") is None and r.get("protocol") != "episodes"}
    for target in s["target_accuracy"]:
        if target not in finals:
            return f"{rel(folder / 'metatest.jsonl', root)}: no final row for {target}, which summary.json reports"
    return None


def diverged_line(folder: Path, root: Path) -> str:
    """"toy/ours/<id>: ours seed 0 diverged at meta-train step 3 on glyphs_latin (loss)"."""
    try:
        s = read_json(folder / "summary.json", root)
    except Unreadable as e:
        return f"{rel(folder, root)}: diverged; {e}"
    d = s.get("diverged") if isinstance(s.get("diverged"), dict) else {}
    line = f"{rel(folder, root)}: {s.get('method', '?')} seed {s.get('seed', '?')} diverged"
    if d.get("stage") is not None or d.get("step") is not None:
        line += f" at {d.get('stage', '?')} step {d.get('step', '?')}"
    if d.get("task"):  # the runner leaves it empty where no one task is to blame
        line += f" on {d['task']}"
    return line + (f" ({d['what']})" if d.get("what") else "")
