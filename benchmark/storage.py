"""Run folders: ``<results_dir>/<suite>/<method>/<run-id>/``, self-describing and atomic.

A run folder holds ``config.yaml`` (resolved), ``metrics.jsonl``, ``metatest.jsonl``,
``checkpoints/phi_<step>.pt`` and ``phi_final.pt``, ``summary.json`` and, written last,
``done``. The run id is a hash of the resolved config without the keys that do not
change results (paths, process layout), so the same experiment maps to the same
folder wherever and however it runs. Analysis reads only these folders.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from benchmark import atomic

# Keys that never change a run's numbers: where files go and how processes are laid out.
NOT_IDENTITY = ("results_dir", "data.root", "data.cache_dir", "data.download", "runner")


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

    def start(self) -> None:
        """A fresh folder: an unfinished earlier attempt is cleared, never mixed in."""
        if self.path.exists():
            shutil.rmtree(self.path)
        self.checkpoints.mkdir(parents=True)
        atomic.write_text(self.path / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(self.config)))

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

    def load_phi(self, step: int | str) -> dict:
        return torch.load(self.checkpoints / f"phi_{step}.pt", weights_only=True)

    def finish(self, summary: dict) -> None:
        atomic.write_json(self.path / "summary.json", summary)
        atomic.write_text(self.path / "done", "")

    def summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text())
