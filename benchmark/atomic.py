"""Atomic file writes: a temp file in the same folder, fsync, then rename.

A crash leaves either the old file or the new one, never half of one. Files get the
mode an ordinary ``open`` would give them (0644 under the usual umask 022), not
``mkstemp``'s 0600, so colleagues on a shared cluster can read the results. JSON is
strict: a non-finite float is written as ``null`` (NaN is not JSON).
"""
from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import torch


_umask_lock = threading.Lock()
FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(OSError):
    """A write that ran out of space (or quota); its message names the file. The temp file is gone."""

    def __init__(self, path: str | os.PathLike, detail: str = ""):
        super().__init__(errno.ENOSPC, "the disk is full", str(path))
        self.detail = detail

    def __str__(self) -> str:
        return f"the disk is full (or over quota): cannot write {self.filename}" + (
            f" ({self.detail})" if self.detail else "")


def _umask() -> int:
    """The process's umask, from /proc where Linux shows it (reading it with os.umask means
    setting it, which races with other threads creating files: only the fallback does)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, for strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(finite(obj), allow_nan=False, **kwargs)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in FULL and not isinstance(e, DiskFull):
            raise DiskFull(path, e.strerror or "") from None
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, dumps(obj, indent=2, sort_keys=True) + "\n")


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    try:
        with atomic_open(path, "wb") as f:
            torch.save(obj, f)
    except RuntimeError as e:  # torch's writer reports a short write as "unexpected pos N vs M"
        if "unexpected pos" not in str(e):
            raise
        raise DiskFull(path, f"torch wrote fewer bytes than it meant to: {str(e).split('. ')[-1].strip()}") from None


def append_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    """Append whole lines by rewriting the file atomically (metrics files are small)."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    write_text(path, old + "".join(dumps(r, sort_keys=True) + "\n" for r in rows))
