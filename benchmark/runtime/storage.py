"""Run folders: ``<results_dir>/<suite>/<method>/<run-id>/``, self-describing and atomic.

A run folder holds ``config.yaml`` (resolved), ``metrics.jsonl``, ``metatest.jsonl``,
``checkpoints/phi_<step>.pt`` and ``phi_final.pt``, ``summary.json`` and, written last,
``done`` (or ``diverged``, for a run stopped by a non-finite loss or phi). The run id is a hash of the resolved config without the keys that do not
change results (paths, process layout), so the same experiment maps to the same
folder wherever and however it runs. Analysis reads only these folders.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import shutil
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from omegaconf import OmegaConf

from benchmark import atomic

log = logging.getLogger("lsml")

# Keys that never change a run's numbers: where files go, how processes are laid out,
# how often a resumable checkpoint is written, what is logged. (The thread count and
# runner.compile change them by rounding alone; summary.json records both.) ``suite.paths``
# (where a folder task's images are), ``data.image_size`` and ``data.test_fraction`` are here
# too: a folder: or torchvision: task enters the hash as its path-free name, which ends in its
# size (``folder:birds@32``), and its fingerprint (``suite.fingerprints``: its file list and
# sizes, and the test fraction when its split is drawn), so a moved folder keeps its run id;
# registered tasks ignore both keys.
NOT_IDENTITY = ("results_dir", "data.root", "data.cache_dir", "data.download", "runner", "checkpoint.every", "log",
                "suite.paths", "data.image_size", "data.test_fraction")


# Keys added after run folders existed, with their defaults: a key at its default is left
# out of the hash, so every older run keeps its id (and is found, skipped, resumed).
ADDED_KEYS = {"metatest.validation_at_steps": False, "metatest.train_sizes": [], "metatest.episodes": 0,
              "metatest.episode_ways": 5, "metatest.episode_shots": [1, 5], "metatest.episode_queries": 15,
              "metatest.episode_steps": 100, "metatest.episode_lr": 0.01, "metatest.episode_body": "frozen",
              "suite.fingerprints": {}, "data.pad": None, "data.flip": None, "data.channels": None}


def identity(config: dict) -> dict:
    config = json.loads(json.dumps(config))
    for key in (*NOT_IDENTITY, *ADDED_KEYS):
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.get(p, {})
        if key in NOT_IDENTITY or (leaf in node and node[leaf] == ADDED_KEYS[key]):
            node.pop(leaf, None)
    return config


def run_id(config: dict) -> str:
    blob = json.dumps(identity(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name, for summary.json: wall times and the last bits of a CPU result
    depend on it (MKL picks its code path by CPU). From ``cpuinfo``'s first ``model name``
    line where it has one (Linux on x86), else what ``platform`` says, else "unknown"."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


class RunBusy(RuntimeError):
    """Another live process holds the run's lock: it is running this very folder."""


class BadPath(ValueError):
    """A path a run writes to is taken by a file (or cannot hold folders); the message names it."""


class UnreadableSummary(ValueError):
    """A finished run's summary.json that does not parse or holds no finite number where one is read."""


class CorruptCheckpoint(RuntimeError):
    """A resumable checkpoint that does not match its pointer (truncated, altered, missing)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunDir:
    def __init__(self, config: dict):
        self.config = config
        self.id = run_id(config)
        self.path = Path(config["results_dir"]) / config["suite"]["name"] / config["method"]["name"] / self.id
        self.checkpoints = self.path / "checkpoints"
        self.lock_path = Path(config["results_dir"]) / ".locks" / f"{self.id}.lock"

    def path_problem(self) -> str | None:
        """Why this run's folder or lock cannot be written (a file where a folder must be), or None."""
        results = Path(self.config["results_dir"])
        folders = [self.lock_path.parent, results / self.config["suite"]["name"], self.path.parent, self.path,
                   self.checkpoints]
        for folder in folders:
            if folder.exists() and not folder.is_dir():
                return f"{folder} is a file, where the run needs a folder (results_dir={results})"
        return None

    @property
    def done(self) -> bool:
        return (self.path / "done").exists()

    @property
    def diverged(self) -> bool:
        """The run stopped on a non-finite loss or phi: finished, with no result."""
        return (self.path / "diverged").exists()

    @property
    def finished(self) -> bool:
        """Done or diverged: a rerun repeats neither."""
        return self.done or self.diverged

    # ---- the lock: the only claim on a run --------------------------------------------
    @contextlib.contextmanager
    def lock(self, wait_s: float = 0.5) -> Iterator[None]:
        """Hold the run's lock while the block runs, or raise RunBusy.

        Without it, a second process started on a folder that a first one is running
        (a hand-started run beside a sweep, say) would clear it under the first, or, once
        a resumable checkpoint exists, resume it and write the same files. The lock
        is an flock on ``<results_dir>/.locks/<run-id>.lock`` (inside the run folder,
        clearing the folder would delete it), so the kernel releases it when its holder
        dies, kill -9 included: no stale lock survives a crash. ``wait_s`` rides out a
        :meth:`locked` probe, which holds the lock for a moment."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as f:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RunBusy(f"{self.path} is being run by another process (it holds {self.lock_path})"
                                      ) from None
                    time.sleep(0.05)
            yield

    def locked(self) -> bool:
        """Whether a live process holds the run's lock (a non-blocking probe)."""
        if not self.lock_path.exists():
            return False
        with open(self.lock_path, "a+") as f:  # readable: a shared lock over NFS needs it
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    def start(self, world_size: int) -> int:
        """Prepare the folder; return the step to resume from (0: a fresh start).

        An unfinished earlier attempt resumes from its newest intact checkpoint if it
        ran with the same world size; otherwise it is cleared, never mixed in. Metric
        rows logged after that checkpoint are dropped: the resumed run logs them again."""
        step = self.choose_checkpoint(world_size)
        self._remove_partial_writes()
        if step:
            keep = [r for r in self._intact_rows("metrics") if r["step"] <= step]
            atomic.write_text(self.path / "metrics.jsonl", "".join(atomic.dumps(r, sort_keys=True) + "\n" for r in keep))
            return step
        if self.path.exists():
            shutil.rmtree(self.path)
        self.checkpoints.mkdir(parents=True)
        atomic.write_text(self.path / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(self.config)))
        return 0

    # ---- resumable checkpoints ---------------------------------------------------------
    # One file per rank, then a pointer that commits them: ``resume.json`` names the
    # step, the world size and each file's size and SHA-256. The previous pointer is kept
    # as ``resume.prev.json`` with its files, so a damaged newest checkpoint falls back to
    # the one before it.
    POINTERS = ("resume.json", "resume.prev.json")

    def _state_path(self, step: int, rank: int) -> Path:
        return self.checkpoints / f"state_{step}_rank{rank}.pt"

    def read_pointer(self, name: str = "resume.json") -> dict:
        """A checkpoint pointer; CorruptCheckpoint (naming the file) if it is unreadable."""
        path = self.checkpoints / name
        try:
            pointer = json.loads(path.read_text())
            int(pointer["step"]), int(pointer["world_size"]), dict(pointer["files"])
            return pointer
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CorruptCheckpoint(f"{path} is unreadable ({type(e).__name__}: {e})") from None

    def verify(self, pointer: dict) -> None:
        """CorruptCheckpoint, naming the file, unless every file the pointer names is intact."""
        for name, facts in pointer["files"].items():
            path = self.checkpoints / name
            if not isinstance(facts, dict) or not {"size", "sha256"} <= facts.keys():
                raise CorruptCheckpoint(f"{self.checkpoints / 'resume.json'} names {name} without its size and SHA-256")
            if not path.exists():
                raise CorruptCheckpoint(f"{path} is missing")
            size = path.stat().st_size
            if size != facts["size"]:
                raise CorruptCheckpoint(f"{path} has {size} bytes, its pointer says {facts['size']}")
            if _sha256(path) != facts["sha256"]:
                raise CorruptCheckpoint(f"{path} does not match its SHA-256 in the pointer")

    def checkpoint_step(self) -> int | None:
        """The step of the newest pointer, unverified (for status displays); None if none is readable."""
        for name in self.POINTERS:
            try:
                return int(self.read_pointer(name)["step"])
            except (FileNotFoundError, CorruptCheckpoint):
                continue
        return None

    def choose_checkpoint(self, world_size: int) -> int:
        """The step of the newest intact checkpoint of this world size (0: none), made the
        current pointer. Each damaged one is named in a warning on stderr."""
        if self.finished:
            return 0
        for name in self.POINTERS:
            try:
                pointer = self.read_pointer(name)
                self.verify(pointer)
            except FileNotFoundError:
                continue
            except CorruptCheckpoint as e:
                warn(f"checkpoint damaged: {e}")
                continue
            if pointer["world_size"] != world_size:
                warn(f"the checkpoint at step {pointer['step']} was written by a run of runner.world_size="
                     f"{pointer['world_size']}; this one has {world_size}: {self.path} starts over from step 0")
                return 0
            if pointer.get("threads", torch.get_num_threads()) != torch.get_num_threads():
                warn(f"the checkpoint at step {pointer['step']} was written with {pointer['threads']} torch threads, "
                     f"this process runs {torch.get_num_threads()}: the result will not be bit-identical to an "
                     "uninterrupted run (CPU kernels round differently with the thread count)")
            was, now = pointer.get("compile", False), self.config.get("runner", {}).get("compile", False)
            if was != now:
                warn(f"the checkpoint at step {pointer['step']} was written with runner.compile={str(was).lower()}, "
                     f"this run has runner.compile={str(now).lower()}: the result will not be bit-identical to an "
                     "uninterrupted run (compiled kernels round differently)")
            if name != "resume.json":
                warn(f"resuming from the previous checkpoint, step {pointer['step']}")
                atomic.write_json(self.checkpoints / "resume.json", pointer)
            return int(pointer["step"])
        if any((self.checkpoints / n).exists() for n in self.POINTERS):
            warn(f"no intact checkpoint in {self.checkpoints}: restarting {self.path} from step 0")
        return 0

    def resume_step(self, world_size: int) -> int:
        """The step every rank resumes from, once rank 0's :meth:`start` has chosen it."""
        if self.finished:
            return 0
        try:
            pointer = self.read_pointer()
        except (FileNotFoundError, CorruptCheckpoint):
            return 0
        return int(pointer["step"]) if pointer["world_size"] == world_size else 0

    def save_state(self, step: int, collective, state: dict) -> None:
        atomic.torch_save(state, self._state_path(step, collective.rank))
        collective.barrier()  # every rank's file exists before the pointer names it
        if collective.rank == 0:
            files = {}
            for rank in range(collective.world_size):
                path = self._state_path(step, rank)
                files[path.name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
            current = self.checkpoints / "resume.json"
            if current.exists():
                os.replace(current, self.checkpoints / "resume.prev.json")
            atomic.write_json(current, {"step": step, "world_size": collective.world_size,
                                        "threads": torch.get_num_threads(),
                                        "compile": self.config.get("runner", {}).get("compile", False), "files": files})
            keep = set(files)
            with contextlib.suppress(FileNotFoundError, CorruptCheckpoint):
                keep |= set(self.read_pointer("resume.prev.json")["files"])
            for old in self.checkpoints.glob("state_*_rank*.pt"):
                if old.name not in keep:
                    old.unlink(missing_ok=True)
        collective.barrier()

    def load_state(self, step: int, rank: int) -> dict:
        return torch.load(self._state_path(step, rank), weights_only=False)

    def _drop_resumable_state(self) -> None:
        paths = [*self.checkpoints.glob("state_*_rank*.pt"), *(self.checkpoints / n for n in self.POINTERS)]
        for path in paths:
            path.unlink(missing_ok=True)  # resumable state is dead weight once finished

    def log(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Append rows to ``<name>.jsonl`` (rewritten atomically: whole lines or nothing)."""
        atomic.append_jsonl(self.path / f"{name}.jsonl", rows)

    def read(self, name: str) -> list[dict[str, Any]]:
        path = self.path / f"{name}.jsonl"
        return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []

    def _remove_partial_writes(self) -> None:
        """Delete the temp files of writes a killed process left (``atomic``'s ``.<name>.*.tmp``):
        the run's lock is held, so no live writer owns them."""
        for folder in (self.path, self.checkpoints):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
                warn(f"removing {tmp}, a write that a stopped process left unfinished")
                tmp.unlink(missing_ok=True)

    def _intact_rows(self, name: str) -> list[dict[str, Any]]:
        """The rows of ``<name>.jsonl`` that parse; the others (a tail cut short by a kill or a full
        disk) are dropped with a warning naming the file: a resume logs them again."""
        path = self.path / f"{name}.jsonl"
        rows, bad = [], []
        text = path.read_text(errors="replace") if path.exists() else ""
        for n, line in enumerate(text.splitlines(), 1):
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                    raise ValueError("not a row with a step")
                rows.append(row)
            except ValueError:
                bad.append(n)
        if bad:
            warn(f"damaged {path}: dropped {len(bad)} line(s) that do not parse (line {bad[0]} of "
                 f"{len(text.splitlines())}); the resume logs its rows again from the checkpoint's step")
        return rows

    def save_phi(self, state: dict, step: int | str) -> Path:
        path = self.checkpoints / f"phi_{step}.pt"
        atomic.torch_save(state, path)
        return path

    def save_val_split(self, indices: dict[str, torch.Tensor]) -> None:
        """The validation indices of each source's training set (FOMAML-type methods)."""
        atomic.torch_save(indices, self.path / "val_split.pt")

    def load_phi(self, step: int | str) -> dict:
        return torch.load(self.checkpoints / f"phi_{step}.pt", weights_only=True)

    def finish(self, summary: dict) -> None:
        atomic.write_json(self.path / "summary.json", {"status": "done", **summary})
        atomic.write_text(self.path / "done", "")
        self._drop_resumable_state()

    def finish_diverged(self, summary: dict) -> None:
        """Record a diverged run: its summary (no accuracies), then the ``diverged`` marker."""
        atomic.write_json(self.path / "summary.json", {"status": "diverged", **summary})
        atomic.write_text(self.path / "diverged", "")
        self._drop_resumable_state()

    def summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text())

    def validation_mean(self) -> float:
        """A done run's ``validation_mean``; UnreadableSummary, naming the file, if summary.json is cut
        short, not strict JSON (NaN), or holds no finite number there (null)."""
        path = self.path / "summary.json"
        try:
            value = json.loads(path.read_text(), parse_constant=_no_constant)["validation_mean"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"validation_mean is {json.dumps(value)}, not a number")
            return float(value)
        except (OSError, ValueError, KeyError, TypeError) as e:
            reason = f"no {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
            raise UnreadableSummary(f"{path} is unreadable ({reason})") from None


def _no_constant(token: str):
    raise ValueError(f"{token} is not JSON")


def warn(message: str) -> None:
    """A WARNING on the ``lsml`` logger (shown on stderr even before ``benchmark.logs.setup``)."""
    log.warning(message)
