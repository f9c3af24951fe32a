"""Run one config end to end: load its data, meta-train, meta-test, write its run folder.

:func:`execute` is what ``python -m benchmark.run``, a sweep's local job, a SLURM job and each
rank of a multi-process run (``benchmark.runtime.worker``) call. It owns the devices, the
process group, the run folder's lock and the resume; the training loop and the meta-test are
``benchmark.core``'s.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time

import torch
from omegaconf import OmegaConf

from benchmark.config import Config, cores
from benchmark.core import episodes
from benchmark.core.compiled import check_compile
from benchmark.core.metatest import check_train_sizes, limited, meta_test
from benchmark.core.train import Diverged, meta_train
from benchmark.runtime import distributed
from benchmark.runtime.scalars import Scalars
from benchmark.runtime.storage import BadPath, RunDir, cpu_model, git_commit
from methods.base import METHODS, Method
from tasks.decode import to_channels
from tasks.registry import TASKS, Splits
from tasks.user import with_channels

# Exit codes of ``python -m benchmark.run`` (and of each rank): 0 done, 1 failed, 2 a bad
# key (nothing ran), 3 diverged (recorded as such), 75 another process holds the run.
EXIT_FAILED, EXIT_CONFIG, EXIT_DIVERGED, EXIT_BUSY = 1, 2, 3, 75
log = logging.getLogger("lsml")


class RunFailed(RuntimeError):
    """A multi-process run in which some rank failed (its traceback was printed)."""


def load_data(cfg: Config, method: Method) -> dict[str, Splits]:
    """Every task the run names, decoded (or rendered) once and cached as uint8 tensors.

    Caches are memory-mapped, so the ranks of one machine share the pages and each
    touches only its own tasks. ``data.channels`` converts every task to its channel count."""
    names = dict.fromkeys([*method.sources(cfg.suite), *cfg.suite.targets, *cfg.suite.validation])
    return {name: to_channels(TASKS.get(name).load(cfg.data), cfg.data.channels) for name in names}


def execute(cfg: Config, progress: bool = True) -> RunDir:
    """Run one experiment end to end; a finished run folder is returned untouched.

    Raises Diverged if the run stopped (now or before) on a non-finite loss or phi; its
    folder then holds a ``diverged`` marker and a summary saying where, and no ``done``."""
    distributed.check_device(cfg.runner.device)
    config = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    run = RunDir(config)
    if problem := run.path_problem():  # before any data or compute
        raise BadPath(problem)
    place = distributed.place_from_env()
    if _already_finished(run, place):
        return run
    if cfg.runner.world_size > 1 and place is None:
        with run.lock():
            if _already_finished(run, place):
                return run
            code = distributed.spawn(OmegaConf.to_yaml(config), cfg.runner.world_size)
        if run.diverged:
            _already_finished(run, place)
        if code:
            raise RunFailed(f"a rank of {run.path} failed with exit code {code}")
        return run

    torch.set_num_threads(cfg.runner.threads or max(1, cores() // cfg.runner.world_size))
    device = distributed.device_for(cfg.runner.device, place)
    if cfg.runner.compile:
        check_compile(device)
    method = METHODS.get(cfg.method.name).build(cfg.method)
    data = load_data(cfg, method)  # before the lock and the folder: missing data leaves nothing behind
    check_train_sizes(cfg, data)
    episodes.check(cfg, data)
    # The process that owns the run holds its lock: this one, a self-spawn's parent
    # (above; not its workers), or rank 0 under torchrun / srun.
    owner = place is None or (place.rank == 0 and distributed.SPAWNED not in os.environ)
    with run.lock() if owner else contextlib.nullcontext():
        if _already_finished(run, place):  # finished by another process meanwhile
            return run
        collective = distributed.connect(cfg.runner.world_size, device, cfg.runner.timeout)
        started = time.perf_counter()
        scalars = Scalars()
        try:
            if collective.rank == 0:
                run.start(cfg.runner.world_size)
            collective.barrier()
            resume = run.resume_step(cfg.runner.world_size)
            if resume and collective.rank == 0:
                log.info(f"resuming {run.path} from step {resume}")
            sources = method.sources(cfg.suite)
            scalars = Scalars.open(cfg, run, collective.rank, resume * len(sources))
            try:
                result = meta_train(cfg, method, run, data, device, collective, progress=progress and collective.rank == 0,
                                    resume_step=resume, scalars=scalars)
                if collective.rank == 0:
                    finish(cfg, run, data, device, result, progress, scalars)
            except Diverged as e:
                if collective.rank == 0:
                    run.finish_diverged({**_identity(cfg, run), "diverged": e.where,
                                         "inner_steps": e.inner_steps,
                                         "wall_seconds": round(time.perf_counter() - started, 3)})
                    e.args = (f"{e} ({run.path / 'summary.json'})",)
                if e.where["stage"] == "meta-train":  # every rank is here; the meta-test runs on rank 0 only
                    collective.barrier()  # the record exists before any rank exits
                raise
        finally:
            scalars.close()
            collective.close()
    return run


def _already_finished(run: RunDir, place: distributed.Place | None) -> bool:
    """True if the run is done; raises Diverged if it diverged. Rank 0 says which."""
    speaks = place is None or place.rank == 0
    if run.diverged:
        try:
            where = run.summary()["diverged"]
        except (OSError, ValueError, KeyError):  # a damaged summary still marks a diverged run
            where = {}
        error = Diverged(where.get("stage", "?"), where.get("step", 0), where.get("task", ""), where.get("what", "loss"))
        error.args = (f"already {error} ({run.path / 'summary.json'}; delete the folder to run it again)",)
        raise error
    if run.done and speaks:
        log.info(f"already done: {run.path}")
    return run.done


def _identity(cfg: Config, run: RunDir) -> dict:
    """What every summary records; the layout too, since the run id leaves it out and CPU
    results are bit-identical only across layouts of equal threads per process (and equal
    ``runner.compile``), and the CPU's model, which sets wall times and, through MKL's code
    path, the last bits."""
    return {"method": cfg.method.name, "suite": cfg.suite.name, "seed": cfg.seed, "run_id": run.id,
            "git_commit": git_commit(), "layout": {"world_size": cfg.runner.world_size,
                                                   "threads": torch.get_num_threads(), "device": cfg.runner.device,
                                                   "compile": cfg.runner.compile, "cpu": cpu_model()}}


def finish(cfg: Config, run: RunDir, data: dict[str, Splits], device, result: dict, progress: bool,
           scalars: Scalars | None = None) -> None:
    """Meta-test the final phi on the targets and the validation tasks, and every saved
    ``metatest.at_steps`` phi on the targets (and on the validation tasks if
    ``metatest.validation_at_steps``), and the final phi again on the targets with each
    ``metatest.train_sizes`` subset of their training images (rows with ``train_size``)
    and in ``metatest.episodes`` few-shot episodes (rows with ``protocol: episodes``);
    then mark the run done."""
    steps = sorted(s for s in cfg.metatest.at_steps if (run.checkpoints / f"phi_{s}.pt").exists())
    tasks = [("target", t) for t in cfg.suite.targets] + [("validation", t) for t in cfg.suite.validation]
    rows, final = [], {"target": {}, "validation": {}}
    for phi_step in [*steps, "final"]:
        phi = run.load_phi(phi_step)
        for role, task in tasks:
            if role == "validation" and phi_step != "final" and not cfg.metatest.validation_at_steps:
                continue
            acc = _meta_test(cfg, phi, task, data[task], device, progress, result, f"meta-test {task} @ {phi_step}")
            step = result["steps"] if phi_step == "final" else phi_step
            inner = step * result["inner_steps"] // max(1, result["steps"])
            rows.append({"target": task, "role": role, "phi_step": phi_step, "inner_steps": inner, "accuracy": acc})
            if phi_step == "final":
                final[role][task] = acc
    limited_rows = []
    for size in cfg.metatest.train_sizes:
        for task in cfg.suite.targets:
            acc = _meta_test(cfg, phi, task, limited(data[task], size, cfg.seed, task), device, progress,
                             result, f"meta-test {task} @ final, {size} per class")
            limited_rows.append({"target": task, "role": "target", "phi_step": "final", "train_size": size,
                                 "inner_steps": result["inner_steps"], "accuracy": acc})
    episode_rows = episodes.rows(cfg, phi, data, device, result["inner_steps"], progress) if cfg.metatest.episodes else []
    run.log("metatest", rows + limited_rows + episode_rows)
    if scalars:
        scalars.metatest(rows + limited_rows + episode_rows)
    validation = final["validation"]
    run.finish({
        **_identity(cfg, run), "inner_steps": result["inner_steps"], "wall_seconds": round(result["wall_seconds"], 3),
        "target_accuracy": final["target"], "mean_accuracy": sum(final["target"].values()) / len(final["target"]),
        "validation_accuracy": validation,
        "validation_mean": sum(validation.values()) / len(validation) if validation else None,
    })


def _meta_test(cfg: Config, phi: dict, task: str, splits: Splits, device, progress: bool, result: dict,
               desc: str) -> float:
    try:
        return meta_test(cfg, phi, with_channels(TASKS.get(task), cfg.data.channels), splits, device, progress,
                         desc=desc)
    except Diverged as e:
        e.inner_steps = result["inner_steps"]
        raise


def print_table(run: RunDir) -> None:
    s = run.summary()
    width = max(len(t) for t in s["target_accuracy"]) + 2
    print(f"\n{s['method']} on {s['suite']}, seed {s['seed']}: {run.path}")
    for target, acc in s["target_accuracy"].items():
        print(f"  {target:<{width}} {100 * acc:6.2f}")
    print(f"  {'mean':<{width}} {100 * s['mean_accuracy']:6.2f}")
