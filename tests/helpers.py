"""Shared test helpers: compose a validated config the way the CLI does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module

from benchmark.config import Config, validate

ROOT = Path(__file__).resolve().parents[1]


def make_config(*overrides: str) -> Config:
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        return validate(compose("config", overrides=list(overrides)))


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark.run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
