"""One logging handler for the command-line entry points: messages a person reads.

Libraries (``tasks``, ``benchmark``) log to the ``lsml`` logger and never configure it;
each entry point (``benchmark.run``, ``benchmark.sweep``, ``benchmark.tune``,
``analysis.report``) calls :func:`setup` once with ``log.level`` (default INFO), which
sends them to stderr. ``print`` stays for the result tables on stdout.
"""
from __future__ import annotations

import logging
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOGGER = "lsml"


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a message comes, not the stream
    it was made with (a test that captures stderr replaces ``sys.stderr``)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup(level: str = "INFO") -> logging.Logger:
    """Route the ``lsml`` logger to stderr at ``level`` (idempotent: one handler, whatever
    the number of calls)."""
    if level.upper() not in LEVELS:
        raise ValueError(f"log.level: must be one of {', '.join(LEVELS)}, got {level!r}")
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level.upper())
    logger.propagate = False
    if not any(getattr(h, "_lsml", False) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        handler._lsml = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger


def level_from(overrides: list[str], default: str = "INFO") -> str:
    """``log.level=`` among ``key=value`` overrides (the last one), else ``default``."""
    given = [o.partition("=")[2] for o in overrides if o.partition("=")[0].lstrip("+~") == "log.level"]
    return given[-1] if given else default
