"""The meta-training loop: seed, build, loop, checkpoint. One function, top to bottom.

A batch's path: ``TaskStream.batch(step)`` gathers uint8 images already on the device
and normalizes them; the learner (body + head) computes the loss; ``backward`` writes
the gradient into the population's flat buffer; ``Population.inner_step`` moves every
learner; then the method's policy may move phi, shift or reset the learners.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.config import Config
from benchmark.data import TaskStream, generator, split_train_val, val_indices
from benchmark.distributed import Collective, injected_fault
from benchmark.models import MODELS, flat_params
from benchmark.population import Population
from benchmark.storage import RunDir, StopRequest
from methods.base import METHODS, Method
from tasks.registry import TASKS, Splits


def build_body(cfg: Config, channels: int) -> torch.nn.Module:
    return MODELS.get(cfg.model.name).build_body(cfg.model, channels)


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
    run: RunDir,
    data: dict[str, Splits],
    device: torch.device,
    collective: Collective | None = None,
    progress: bool = True,
    resume_step: int = 0,
) -> dict:
    """Meta-train phi; from ``resume_step``'s checkpoint when it is > 0 (bit-identical on CPU)."""
    collective = collective or Collective()
    method: Method = METHODS.get(cfg.method.name).build(cfg.method)
    channels = TASKS.get(cfg.suite.sources[0]).channels
    body = initial_body(cfg, channels)
    phi0 = flat_params(body)
    start = time.perf_counter()
    if not method.meta_trains:
        run.save_phi(phi_state(body, phi0), "final")
        return {"steps": 0, "inner_steps": 0, "wall_seconds": time.perf_counter() - start}

    sources = method.sources(list(cfg.suite.sources), {n: len(data[n].train_y) for n in cfg.suite.sources})
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
    )
    pop.val_batches = lambda i: val_streams[i].batch(pop.step)  # for methods with needs_val
    method.setup(pop, steps)
    save_at = {steps} | {s for s in cfg.metatest.at_steps if s < steps}
    if cfg.checkpoint.phi_every:
        save_at |= set(range(cfg.checkpoint.phi_every, steps, cfg.checkpoint.phi_every))

    # Running sums of loss and correct predictions per learner, kept on the device so
    # the hot loop never waits for it; read once per log interval.
    stats = torch.zeros(len(specs), 2, device=device)
    last_log, wall_before = 0, 0.0
    if resume_step:
        state = run.load_state(resume_step, collective.rank)
        pop.load_state_dict(state["population"])
        method.load_state_dict(state["method"])
        stats.copy_(state["stats"])
        last_log, wall_before = state["last_log"], state["wall_seconds"]
    start -= wall_before
    with StopRequest() as stop:
        bar = tqdm(range(resume_step + 1, steps + 1), initial=resume_step, total=steps, dynamic_ncols=True,
                   desc=f"meta-train {cfg.method.name}", disable=None if progress else True,
                   mininterval=1.0)
        fault = injected_fault(collective.rank)
        for step in bar:
            pop.step = step
            if step == fault:
                raise RuntimeError(f"injected fault at step {step} on rank {collective.rank} (LSML_FAULT)")
            for i, (learner, stream) in enumerate(zip(pop.learners, streams)):
                x, y = stream.batch(step)
                logits = learner(x)
                loss = F.cross_entropy(logits, y)
                loss.backward()
                stats[i, 0] += loss.detach()
                stats[i, 1] += (logits.argmax(1) == y).sum()
            pop.inner_step()
            method.after_step(step, pop)

            if step % cfg.train.log_every == 0 or step == steps:
                rows = _metric_rows(stats / (step - last_log), local, step, len(sources), time.perf_counter() - start,
                                   cfg.train.batch_size)
                rows = collective.gather_rows(rows)
                if collective.rank == 0:
                    run.log("metrics", rows)
                    bar.set_postfix(loss=f"{sum(r['loss'] for r in rows) / len(rows):.3f}")
                stats.zero_()
                last_log = step
            if step in save_at and collective.rank == 0:
                run.save_phi(phi_state(body, pop.phi), "final" if step == steps else step)
            stopping = collective.any(stop.requested is not None)  # every rank stops at the same step
            if (cfg.checkpoint.every and step % cfg.checkpoint.every == 0 and step < steps) or stopping:
                state = {"population": pop.state_dict(), "method": method.state_dict(), "stats": stats,
                         "last_log": last_log, "wall_seconds": time.perf_counter() - start}
                run.save_state(step, collective, state)
                if stopping:
                    stop.stop()
    return {"steps": steps, "inner_steps": steps * len(sources), "wall_seconds": time.perf_counter() - start}


def _metric_rows(stats: torch.Tensor, names: list[str], step: int, n_tasks: int, wall: float,
                 batch_size: int) -> list[dict]:
    """``stats`` holds per-learner means per step of (loss, correct count) since the last log."""
    loss, correct = stats.cpu().unbind(1)
    return [
        {"step": step, "inner_steps": step * n_tasks, "wall_seconds": round(wall, 3), "task": name,
         "loss": float(loss[i]), "acc": float(correct[i]) / batch_size}
        for i, name in enumerate(names)
    ]
