"""The meta-training loop: seed, build, loop, checkpoint. One function, top to bottom.

A batch's path: ``TaskStream.batch(step)`` gathers uint8 images already on the device
and normalizes them; the learner (body + head) computes the loss (``runner.compile``: the body
through ``torch.compile``, see ``benchmark/core/compiled.py``); ``backward`` writes
the gradient into the population's flat buffer; ``Population.inner_step`` moves every
learner; then the method's policy may move phi, shift or reset the learners (a policy
that steps phi with the training gradients does so just before the inner step).

A non-finite loss or phi stops the run at the step where it appears, raising Diverged
with that step and task; the runner records the run as diverged. The check is one flag
read per step (on CUDA, one host sync per step; a multi-process run already has one,
the all-reduce that stops every rank at the same step on SIGTERM).

Differences from the authors' scripts that every method shares (each method's docstring
lists its own):
- phi_0 is one seeded body for every task. Theirs is not synchronised: every script calls
  ``share_params(model.parameters())`` (e.g. ``meta_train_ours.py`` line 149), whose generator
  the ``torch.cat`` at ``utils.py`` line 49 exhausts, so the copy-back loop (lines 53-56) never
  runs. Each task starts from its own unseeded draw until the first meta-update averages them.
- Batches follow permutations seeded by (seed, task, epoch) and drop no image. Theirs come from
  unseeded, shuffled DataLoaders with ``drop_last=True`` (``dataloader.py`` lines 53-56; the
  earlier loader, lines 75-77), which the FOMAML, ANIL and iMAML scripts rebuild at every reset.
- Methods without validation batches train on all of each source's training set, as the
  authors' three-value ``get_dataloader`` scripts do (``meta_train_ours.py`` line 125 matches
  the earlier loader, ``dataloader.py`` lines 62-80, which has no split).
- Any process layout gives the same result. Theirs is one process per task, world size 8.
- Their ``--pretrained`` ImageNet load (``meta_train_ours.py`` lines 142-146) loads nothing (it
  filters on ``requires_grad``, False for loaded tensors). There is no such option here.
- A non-finite loss or phi stops the run here; theirs trains on.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.config import Config
from benchmark.core.collective import Collective
from benchmark.core.compiled import body_forward
from benchmark.core.data import TaskStream, split_train_val, val_indices
from benchmark.core.population import Population
from benchmark.models import build_body, flat_params
from benchmark.seeding import generator
from benchmark.signals import StopRequest
from methods.base import Method
from tasks.registry import TASKS, Splits

log = logging.getLogger("lsml")


class RunFolder(Protocol):
    """Where the loop writes: ``benchmark.runtime.storage.RunDir`` (the runner passes it in)."""

    def log(self, name: str, rows: list[dict]) -> None: ...
    def save_phi(self, state: dict, step: int | str) -> object: ...
    def save_val_split(self, indices: dict[str, torch.Tensor]) -> None: ...
    def save_state(self, step: int, collective: Collective, state: dict) -> None: ...
    def load_state(self, step: int, rank: int) -> dict: ...


class Sinks(Protocol):
    """Rank 0's scalar sinks: ``benchmark.runtime.scalars.Scalars`` (the runner passes it in)."""

    def watch_phi(self, phi: torch.Tensor) -> Any: ...
    def training(self, rows: list[dict], phi_change: Any) -> None: ...
    def flush(self) -> None: ...


class Diverged(RuntimeError):
    """A non-finite loss or phi: the run stops and is recorded as diverged, not done."""

    def __init__(self, stage: str, step: int, task: str, what: str = "loss"):
        self.where = {"stage": stage, "step": step, "task": task, "what": what}
        self.inner_steps: int | None = None  # meta-training's inner steps up to here
        on = f" on {task}" if task else ""
        super().__init__(f"diverged: non-finite {what} at {stage} step {step}{on}")


def initial_body(cfg: Config, channels: int) -> torch.nn.Module:
    """phi_0: the same body for every method and process, given the seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_body(cfg, channels)


def phi_state(body: torch.nn.Module, phi: torch.Tensor) -> dict:
    """phi as the body's state dict. BatchNorm statistics are not part of phi: they keep
    the freshly built body's defaults, and the meta-test re-estimates them."""
    offset, state = 0, {}
    params = dict(body.named_parameters())
    for name, value in body.state_dict().items():
        if name in params:
            value = phi[offset : offset + value.numel()].view_as(value)
            offset += value.numel()
        state[name] = value.detach().cpu().clone()
    return state


def shard(names: list[str], rank: int, world_size: int) -> list[str]:
    """Contiguous, possibly uneven shards: rank r holds tasks [r*T//W, (r+1)*T//W)."""
    T = len(names)
    return names[rank * T // world_size : (rank + 1) * T // world_size]


def meta_train(
    cfg: Config,
    method: Method,
    run: RunFolder,
    data: dict[str, Splits],
    device: torch.device,
    collective: Collective | None = None,
    progress: bool = True,
    resume_step: int = 0,
    scalars: Sinks | None = None,
) -> dict:
    """Meta-train phi; from ``resume_step``'s checkpoint when it is > 0 (bit-identical on CPU).
    ``scalars`` (rank 0's sinks, e.g. TensorBoard) get each log interval's rows."""
    collective = collective or Collective()
    channels = cfg.data.channels or TASKS.get(cfg.suite.sources[0]).channels
    body = initial_body(cfg, channels)
    phi0 = flat_params(body)
    start = time.perf_counter()
    if not method.meta_trains:
        if collective.rank == 0:
            run.log("metrics", [])  # no rows, but the same files as every other run folder
        run.save_phi(phi_state(body, phi0), "final")
        return {"steps": 0, "inner_steps": 0, "wall_seconds": time.perf_counter() - start}

    sources = method.sources(cfg.suite)
    steps = method.steps(cfg.train.steps, len(cfg.suite.sources))
    local = shard(sources, collective.rank, collective.world_size)
    collective.rows_per_rank = [len(shard(sources, r, collective.world_size)) for r in range(collective.world_size)]
    if method.needs_val and collective.rank == 0 and resume_step == 0:  # recorded, for audit and reuse
        run.save_val_split({n: val_indices(len(data[n].train_y), method.cfg.val_fraction, cfg.seed, n)
                            for n in sources})
    specs = [TASKS.get(n) for n in local]
    streams, val_streams = [], []
    for spec in specs:
        splits = data[spec.name]
        if method.needs_val:
            splits, val = split_train_val(splits, method.cfg.val_fraction, cfg.seed, spec.name)
            val_streams.append(TaskStream(val.train_x, val.train_y, spec, cfg.train.batch_size,
                                          (cfg.seed, spec.name, "val"), device))
        streams.append(TaskStream(splits.train_x, splits.train_y, spec, cfg.train.batch_size,
                                  (cfg.seed, spec.name, "train"), device))

    pop = Population(
        body, phi0, [s.num_classes for s in specs], [generator(cfg.seed, s.name, "head") for s in specs],
        inner_lr=cfg.train.inner_lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay,
        nesterov=cfg.train.nesterov, collective=collective, device=device,
        val_batches=(lambda i, step: val_streams[i].batch(step)) if method.needs_val else None,
    )
    method.setup(pop)
    save_at = {steps} | {s for s in cfg.metatest.at_steps if s < steps}
    if cfg.checkpoint.phi_every:
        save_at |= set(range(cfg.checkpoint.phi_every, steps, cfg.checkpoint.phi_every))

    # Running sums of loss and correct predictions per learner, kept on the device and read
    # once per log interval; and the first step at which each learner's loss was not
    # finite (0: none yet), one flag read per step.
    stats = torch.zeros(len(specs), 2, device=device)
    losses = pop.train_losses  # the policy may read this step's losses (Leap does)
    first_bad = torch.zeros(len(specs), dtype=torch.long, device=device)
    last_log, wall_before = 0, 0.0
    forward = body_forward(cfg.runner.compile)
    if resume_step:
        state = run.load_state(resume_step, collective.rank)
        pop.load_state_dict(state["population"])
        method.load_state_dict(state["method"])
        stats.copy_(state["stats"])
        last_log, wall_before = state["last_log"], state["wall_seconds"]
    start -= wall_before
    phi_change = scalars.watch_phi(pop.phi) if scalars else None  # None: no per-step work
    with StopRequest() as stop:
        bar = tqdm(range(resume_step + 1, steps + 1), initial=resume_step, total=steps, dynamic_ncols=True,
                   desc=f"meta-train {cfg.method.name}", disable=None if progress else True,
                   mininterval=1.0)
        fault = _injected_fault(collective.rank)
        loop_start = time.perf_counter()
        for step in bar:
            pop.step = step
            if step == fault:
                raise RuntimeError(f"injected fault at step {step} on rank {collective.rank} (LSML_FAULT)")
            for i, (learner, stream) in enumerate(zip(pop.learners, streams)):
                x, y = stream.batch(step)
                logits = learner.head(forward(learner.body, x))
                loss = F.cross_entropy(logits, y)
                loss.backward()
                losses[i] = loss.detach()
                stats[i, 1] += (logits.argmax(1) == y).sum()
            stats[:, 0] += losses
            first_bad.masked_fill_((first_bad == 0) & ~torch.isfinite(losses), step)
            method.before_step(step, pop)
            pop.inner_step()
            method.after_step(step, pop)
            if phi_change is not None:
                phi_change.step()
            if cfg.runner.compile and step == resume_step + 1:
                log.info("runner.compile: first step done %.1f s after the loop started", time.perf_counter() - loop_start)

            logging_step = step % cfg.train.log_every == 0 or step == steps
            stopping = collective.any(stop.requested is not None)  # every rank stops at the same step
            checkpointing = bool(cfg.checkpoint.every and step % cfg.checkpoint.every == 0 and step < steps) or stopping
            diverged = _divergence(first_bad, pop.phi, local, step, collective)
            if logging_step or diverged:
                rows = _metric_rows(stats / (step - last_log), local, step, len(sources), time.perf_counter() - start,
                                   cfg.train.batch_size)
                rows = collective.gather_rows(rows)
                if collective.rank == 0:
                    run.log("metrics", rows)
                    if scalars:
                        scalars.training(rows, phi_change)
                    bar.set_postfix(loss=f"{sum(r['loss'] for r in rows) / len(rows):.3f}")
                stats.zero_()
                last_log = step
            if diverged:
                diverged.inner_steps = step * len(sources)
                raise diverged
            if step in save_at and collective.rank == 0:
                run.save_phi(phi_state(body, pop.phi), "final" if step == steps else step)
            if checkpointing:
                state = {"population": pop.state_dict(), "method": method.state_dict(), "stats": stats,
                         "last_log": last_log, "wall_seconds": time.perf_counter() - start}
                run.save_state(step, collective, state)
                if scalars:  # what a resume keeps (purge_step) must be on disk before a kill -9
                    scalars.flush()
                if stopping:
                    stop.stop()
    return {"steps": steps, "inner_steps": steps * len(sources), "wall_seconds": time.perf_counter() - start}


def _divergence(first_bad: torch.Tensor, phi: torch.Tensor, names: list[str], step: int,
                collective: Collective) -> Diverged | None:
    """The run's first non-finite loss (earliest step, then task order) or, failing that, a
    non-finite phi, as the same Diverged on every rank; None if all is finite. One flag
    read from the device, plus a gather across ranks only when something diverged."""
    if not collective.any(bool(first_bad.any() | ~torch.isfinite(phi).all())):
        return None
    bad = [(int(s), name) for s, name in zip(first_bad.tolist(), names) if s]
    rows = collective.share_rows([{"step": s, "task": name} for s, name in bad])
    if rows:
        first = min(rows, key=lambda r: r["step"])  # stable: task order among equal steps
        return Diverged("meta-train", first["step"], first["task"])
    return Diverged("meta-train", step, "", what="phi")


def _metric_rows(stats: torch.Tensor, names: list[str], step: int, n_tasks: int, wall: float,
                 batch_size: int) -> list[dict]:
    """``stats`` holds per-learner means per step of (loss, correct count) since the last log."""
    loss, correct = stats.cpu().unbind(1)
    return [
        {"step": step, "inner_steps": step * n_tasks, "wall_seconds": round(wall, 3), "task": name,
         "loss": float(loss[i]), "acc": float(correct[i]) / batch_size}
        for i, name in enumerate(names)
    ]


def _injected_fault(rank: int) -> int | None:
    """The step at which this rank must raise, for failure tests: ``LSML_FAULT=<rank>:<step>``."""
    spec = os.environ.get("LSML_FAULT")
    if not spec:
        return None
    fault_rank, step = map(int, spec.split(":"))
    return step if fault_rank == rank else None
