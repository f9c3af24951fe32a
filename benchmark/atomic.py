"""Atomic file writes: a temp file in the same folder, fsync, then rename.

A crash leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import torch


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def append_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    """Append whole lines by rewriting the file atomically (metrics files are small)."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    write_text(path, old + "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
