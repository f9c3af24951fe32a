"""Run folders: ``<results_dir>/<suite>/<method>/<run-id>/``, self-describing and atomic.

A run folder holds ``config.yaml`` (resolved), ``metrics.jsonl``, ``metatest.jsonl``,
``checkpoints/phi_<step>.pt`` and ``phi_final.pt``, ``summary.json`` and, written last,
``done``. The run id is a hash of the resolved config without the keys that do not
change results (paths, process layout), so the same experiment maps to the same
folder wherever and however it runs. Analysis reads only these folders.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator

import torch
from omegaconf import OmegaConf

from benchmark import atomic

# Keys that never change a run's numbers: where files go, how processes are laid out,
# how often a resumable checkpoint is written.
NOT_IDENTITY = ("results_dir", "data.root", "data.cache_dir", "data.download", "runner", "checkpoint.every")


def identity(config: dict) -> dict:
    config = json.loads(json.dumps(config))
    for key in NOT_IDENTITY:
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.get(p, {})
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


class StopRequest:
    """SIGTERM / SIGUSR2 (SLURM's preemption and time-limit signals) ask the loop to stop.

    The handler only sets a flag: the loop finishes its step, writes a resumable
    checkpoint, then hands the signal to the previous handler (submitit's, which
    requeues the job) or exits with 128 + signal."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR2)

    def __init__(self):
        self.requested: int | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def __enter__(self) -> "StopRequest":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def _handle(self, signum, frame) -> None:
        self.requested = signum

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def stop(self) -> None:
        sig = self.requested or signal.SIGTERM  # another rank was signalled
        previous = self._previous.get(sig)
        self.restore()
        print(f"signal {signal.Signals(sig).name}: checkpoint written, stopping", flush=True)
        if callable(previous):
            previous(sig, None)
        raise SystemExit(128 + sig)


class RunBusy(RuntimeError):
    """Another live process holds the run's lock: it is running this very folder."""


class RunDir:
    def __init__(self, config: dict):
        self.config = config
        self.id = run_id(config)
        self.path = Path(config["results_dir"]) / config["suite"]["name"] / config["method"]["name"] / self.id
        self.checkpoints = self.path / "checkpoints"
        self._metrics: list[str] = []

    @property
    def done(self) -> bool:
        return (self.path / "done").exists()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock while the block runs, or raise RunBusy at once.

        Without it, a second process started on a folder that a first one is running
        (a hand-started run beside a sweep, say) would clear it under the first, or, once
        a resumable checkpoint exists, resume it and write the same files. The lock
        is an flock on ``<results_dir>/.locks/<run-id>.lock`` (inside the run folder,
        clearing the folder would delete it), so the kernel releases it when its holder
        dies, kill -9 included: no stale lock survives a crash."""
        path = Path(self.config["results_dir"]) / ".locks" / f"{self.id}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunBusy(f"{self.path} is being run by another process (it holds {path})") from None
            yield

    def start(self, world_size: int) -> int:
        """Prepare the folder; return the step to resume from (0: a fresh start).

        An unfinished earlier attempt resumes from its last complete checkpoint if it
        ran with the same world size; otherwise it is cleared, never mixed in. Metric
        rows logged after that checkpoint are dropped: the resumed run logs them again."""
        step = self.resume_step(world_size)
        if step:
            keep = [r for r in self.read("metrics") if r["step"] <= step]
            atomic.write_text(self.path / "metrics.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))
            return step
        if self.path.exists():
            shutil.rmtree(self.path)
        self.checkpoints.mkdir(parents=True)
        atomic.write_text(self.path / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(self.config)))
        return 0

    # ---- resumable checkpoints: one file per rank, then a pointer that commits them ----
    def resume_step(self, world_size: int) -> int:
        pointer = self.checkpoints / "resume.json"
        if self.done or not pointer.exists():
            return 0
        latest = json.loads(pointer.read_text())
        return latest["step"] if latest["world_size"] == world_size else 0

    def _state_path(self, step: int, rank: int) -> Path:
        return self.checkpoints / f"state_{step}_rank{rank}.pt"

    def save_state(self, step: int, collective, state: dict) -> None:
        atomic.torch_save(state, self._state_path(step, collective.rank))
        collective.barrier()  # every rank's file exists before the pointer names it
        if collective.rank == 0:
            atomic.write_json(self.checkpoints / "resume.json", {"step": step, "world_size": collective.world_size})
            for old in self.checkpoints.glob("state_*_rank*.pt"):
                if not old.name.startswith(f"state_{step}_"):
                    old.unlink(missing_ok=True)
        collective.barrier()

    def load_state(self, step: int, rank: int) -> dict:
        return torch.load(self._state_path(step, rank), weights_only=False)

    def log(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Append rows to ``<name>.jsonl`` (rewritten atomically: whole lines or nothing)."""
        atomic.append_jsonl(self.path / f"{name}.jsonl", rows)

    def read(self, name: str) -> list[dict[str, Any]]:
        path = self.path / f"{name}.jsonl"
        return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []

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
        atomic.write_json(self.path / "summary.json", summary)
        atomic.write_text(self.path / "done", "")
        for path in [*self.checkpoints.glob("state_*_rank*.pt"), self.checkpoints / "resume.json"]:
            path.unlink(missing_ok=True)  # resumable state is dead weight once done

    def summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text())
