"""Measurement scripts, not part of the runner: each times one thing on this machine and
prints figures for a human to read (they are noisy, so nothing here asserts a speed).
``python -m benchmark.perf.overhead`` times the runner's per-step cost against a bare
PyTorch loop, ``benchmark.perf.scaling`` a multi-process run against one process, and
``benchmark.perf.datapath`` the data path against a ResNet-20 step; each has ``--help``.
"""
from __future__ import annotations

import argparse


def check_counts(parser: argparse.ArgumentParser, args: argparse.Namespace, options: tuple[str, ...]) -> None:
    """Each count option is at least 1, and none is given in the old ``name=value`` form,
    which would reach Hydra as an unknown config key."""
    for name in options:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for arg in args.overrides:
        key, _, value = arg.partition("=")
        if key in options:
            parser.error(f"{arg} is not a config key: write --{key.replace('_', '-')} {value}")
