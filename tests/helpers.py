"""Shared test helpers: compose a validated config the way the CLI does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmark.compose import compose_config
from benchmark.config import Config

ROOT = Path(__file__).resolve().parents[1]


def make_config(*overrides: str) -> Config:
    # One thread: tiny models gain nothing from more, and they slow badly when other
    # processes (parallel tests, spawned ranks) share the cores.
    return compose_config(["runner.threads=1", *overrides])


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark.run", *args, "runner.threads=1"], cwd=ROOT,
                          capture_output=True,
                          text=True, timeout=timeout)
