"""Decode or render a dataset once; keep it as uint8 tensors keyed by content.

The key is a hash of everything that determines the tensors (loader name, version,
parameters), so a changed recipe never reads a stale cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

import torch

from benchmark.atomic import torch_save
from tasks.registry import Splits

log = logging.getLogger("lsml")


def cache_key(params: dict) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_splits(cache_dir: str | os.PathLike, name: str, params: dict, build: Callable[[], Splits]) -> Splits:
    path = Path(cache_dir).expanduser() / f"{name}-{cache_key(params)}.pt"
    if path.exists():
        try:
            return _read(path)
        except Exception as e:  # noqa: BLE001  (torch raises OSError, RuntimeError, pickle and zip errors)
            log.warning("damaged cache file %s (%s: %s): deleting it and building it again", path,
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "unreadable")
            path.unlink(missing_ok=True)
    log.info("%s: building its uint8 cache (once; cached in %s)", name, path.parent)
    started = time.perf_counter()
    splits = build()
    torch_save({k: getattr(splits, k) for k in ("train_x", "train_y", "test_x", "test_y")}, path)
    log.info("%s: %d train / %d test images cached in %.1f s", name, len(splits.train_y), len(splits.test_y),
             time.perf_counter() - started)
    return splits


def _read(path: Path) -> Splits:
    """A cache file's splits, memory-mapped; raises if it is cut short, altered or not a cache."""
    splits = Splits(**torch.load(path, weights_only=True, mmap=True))
    for x, y in ((splits.train_x, splits.train_y), (splits.test_x, splits.test_y)):
        if x.dtype != torch.uint8 or x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"holds {x.dtype} {tuple(x.shape)} images for {tuple(y.shape)} labels")
    return splits
