"""One rank of a self-spawned multi-process run: ``python -m benchmark.runtime.worker -`` (the config on stdin).

``benchmark.runtime.distributed.spawn`` starts these with RANK / WORLD_SIZE / MASTER_* set;
the config is the parent's resolved config, so every rank runs exactly the same one. It
comes on stdin, not in a temp file that a killed parent would leave behind. A worker dies
with its parent (:func:`die_with_parent`): a kill -9 of the parent, which holds the run's
lock, leaves no rank training, and writing, unlocked.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

from omegaconf import OmegaConf

from benchmark import atomic, logs
from benchmark.config import from_container
from benchmark.core.train import Diverged
from benchmark.runtime.distributed import PARENT, exit_rank
from benchmark.runtime.execute import EXIT_DIVERGED, EXIT_FAILED, execute

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` exits (Linux: prctl PR_SET_PDEATHSIG; elsewhere a
    thread that watches the parent id), and exit now if it is already gone."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True) if sys.platform == "linux" else None
    if libc is None or libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    if os.getppid() != parent:  # it died before the signal was set
        os._exit(1)


def main(path: str) -> None:
    if PARENT in os.environ:
        die_with_parent(int(os.environ[PARENT]))
    text = sys.stdin.read() if path == "-" else open(path).read()
    cfg = from_container(OmegaConf.to_container(OmegaConf.create(text)))
    logs.setup(cfg.log.level)  # a worker is a process of its own: its messages need the handler too
    try:
        execute(cfg)
    except Diverged as e:  # rank 0 has recorded it; the parent reports it
        print(f"rank error: {e}", file=sys.stderr)
        exit_rank(EXIT_DIVERGED)
    except atomic.DiskFull as e:
        print(f"rank error: {e}", file=sys.stderr)
        exit_rank(EXIT_FAILED)
    exit_rank(0)


if __name__ == "__main__":
    main(sys.argv[1])
