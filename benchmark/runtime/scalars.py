"""One stream of scalars, written to every sink the run asks for (``log.tensorboard``).

The runner builds a :class:`Scalars` on rank 0 only (other ranks get an empty one, which
is falsy: no sink, no per-step work). Every value is keyed by cumulative inner steps
(summed over source tasks), the x-axis of the report's figures, so curves of methods
that run different numbers of learners compare. What is written:

- ``train/loss/<task>``, ``train/acc/<task>``: the same rows as ``metrics.jsonl``, at the
  same log interval, read from the same host copies (nothing extra leaves the device);
- ``train/phi_change``: the mean norm ||phi_after - phi_before|| over the meta-updates
  (steps that moved phi) since the last log: a device-side running sum, kept only when a
  sink is on, read at the log interval;
- ``time/wall_seconds``: the run's wall time at each log (including time before a resume);
- ``metatest/<target>``, ``validation/<task>``, ``limited/<n>_per_class/<target>`` and
  ``episodes/<ways>way_<shots>shot/<target>``: every ``metatest.jsonl`` row, as logged.

A resumed run reopens its event files with ``purge_step`` = the checkpoint's inner steps
+ 1: TensorBoard drops the points the interrupted attempt wrote past the checkpoint
(``metrics.jsonl`` drops the same rows), so each curve has each step once.

A sink is a class with ``write(tag, value, step)``, ``flush()`` and ``close()``; adding one
is one class and one line in :meth:`Scalars.open`. There is no W&B sink: W&B cannot drop
points on resume offline (its rewind needs the server), so a resumed run would show the
interrupted attempt's points twice, and wandb is not a dependency of this project.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch


class TensorBoard:
    """Event files in ``<run>/tb/<method>_seed<seed>_<run id>/``: ``tensorboard --logdir results/``
    names each run by its path, which so holds suite, method, seed and run id."""

    def __init__(self, folder: Path, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(str(folder), purge_step=purge_step, flush_secs=30)

    def write(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class PhiChange:
    """Running sum of ||phi_t - phi_{t-1}|| over the steps that moved phi, on phi's device."""

    def __init__(self, phi: torch.Tensor):
        self.phi, self.before = phi, phi.detach().clone()
        self.total = torch.zeros((), device=phi.device)
        self.updates = torch.zeros((), device=phi.device)

    def step(self) -> None:
        norm = torch.linalg.vector_norm(self.phi - self.before)
        self.total += norm
        self.updates += norm > 0
        self.before.copy_(self.phi)

    def read(self) -> float | None:
        """Mean norm per meta-update since the last read (None if phi did not move); resets."""
        total, updates = float(self.total), int(self.updates)
        self.total.zero_()
        self.updates.zero_()
        return total / updates if updates else None


class Scalars:
    def __init__(self, sinks: list | None = None):
        self.sinks = sinks or []

    def __bool__(self) -> bool:
        return bool(self.sinks)

    @classmethod
    def open(cls, cfg, run, rank: int, resume_inner_steps: int = 0) -> "Scalars":
        """The run's sinks on rank 0; an empty stream elsewhere or when every sink is off."""
        if rank != 0:
            return cls()
        sinks = []
        if cfg.log.tensorboard:
            name = f"{cfg.method.name}_seed{cfg.seed}_{run.id}"
            sinks.append(TensorBoard(run.path / "tb" / name, resume_inner_steps + 1 if resume_inner_steps else None))
        return cls(sinks)

    def write(self, tag: str, value: float | None, step: int) -> None:
        if value is None or not math.isfinite(value):
            return
        for sink in self.sinks:
            sink.write(tag, value, step)

    def watch_phi(self, phi: torch.Tensor) -> PhiChange | None:
        """A tracker of phi's change per meta-update, or None when no sink would read it."""
        return PhiChange(phi) if self else None

    def training(self, rows: list[dict], phi_change: PhiChange | None) -> None:
        """One log interval: the ``metrics.jsonl`` rows (one per source task) just written."""
        step, wall = rows[0]["inner_steps"], rows[0]["wall_seconds"]
        for row in rows:
            self.write(f"train/loss/{row['task']}", row["loss"], step)
            self.write(f"train/acc/{row['task']}", row["acc"], step)
        if phi_change is not None:
            self.write("train/phi_change", phi_change.read(), step)
        self.write("time/wall_seconds", wall, step)

    def metatest(self, rows: list[dict]) -> None:
        """``metatest.jsonl`` rows, each at its phi's cumulative inner steps."""
        for row in rows:
            self.write(metatest_tag(row), row["accuracy"], row["inner_steps"])
        self.flush()

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []


def metatest_tag(row: dict) -> str:
    """The tag of one ``metatest.jsonl`` row: its protocol, then the task."""
    if row.get("protocol") == "episodes":
        return f"episodes/{row['ways']}way_{row['shots']}shot/{row['target']}"
    if row.get("train_size") is not None:
        return f"limited/{row['train_size']}_per_class/{row['target']}"
    return f"{'validation' if row.get('role') == 'validation' else 'metatest'}/{row['target']}"
