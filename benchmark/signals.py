"""Stopping a run cleanly on a scheduler's signal.

A leaf: the training loop (``benchmark.core.train``) obeys it, and a sweep
(``benchmark.sweep``) reads its log line to tell a stop from a failure.
"""
from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("lsml")


class StopRequest:
    """SIGTERM / SIGUSR2 (SLURM's preemption and time-limit signals) ask the loop to stop.

    The handler only sets a flag: the loop finishes its step, writes a resumable
    checkpoint, then hands the signal to the previous handler (submitit's, which
    requeues the job) or exits with 128 + signal."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR2)
    STOPPED = "checkpoint written, stopping"  # the log line by which a sweep tells a stop from a failure

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
        log.warning(f"signal {signal.Signals(sig).name}: {self.STOPPED}")
        if callable(previous):
            previous(sig, None)
        raise SystemExit(128 + sig)
