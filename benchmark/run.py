"""``python -m benchmark.run [key=value ...]``: meta-train one method, meta-test phi, write a run folder.

Examples::

    python -m benchmark.run method=ours
    python -m benchmark.run method=reptile seed=3 train.steps=2000 method.meta_lr=0.1 method.reset_every=100
    python -m benchmark.run --cfg job          # print the resolved config
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from benchmark import distributed
from benchmark.config import Config, cores, validate
from benchmark.metatest import meta_test
from benchmark.storage import RunBusy, RunDir, git_commit
from benchmark.train import meta_train
from tasks.registry import TASKS, Splits

log = logging.getLogger("lsml")


class RunFailed(RuntimeError):
    """A multi-process run in which some rank failed (its traceback was printed)."""


def load_data(cfg: Config) -> dict[str, Splits]:
    """Every task the run names, decoded (or rendered) once and cached as uint8 tensors.

    Caches are memory-mapped, so the ranks of one machine share the pages and each
    touches only its own tasks."""
    names = dict.fromkeys([*cfg.suite.sources, *cfg.suite.targets])
    return {name: TASKS.get(name).load(cfg.data) for name in names}


def execute(cfg: Config, progress: bool = True) -> RunDir:
    """Run one experiment end to end; a finished run folder is returned untouched."""
    config = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    run = RunDir(config)
    place = distributed.place_from_env()
    if _already_done(run, place):
        return run
    if cfg.runner.world_size > 1 and place is None:
        with run.lock():
            if _already_done(run, place):
                return run
            code = distributed.spawn(OmegaConf.to_yaml(config), cfg.runner.world_size)
        if code:
            raise RunFailed(f"a rank of {run.path} failed with exit code {code}")
        return run

    torch.set_num_threads(cfg.runner.threads or max(1, cores() // cfg.runner.world_size))
    device = distributed.device_for(cfg.runner.device, place)
    data = load_data(cfg)  # before the lock and the folder: missing data leaves nothing behind
    # The process that owns the run holds its lock: this one, a self-spawn's parent
    # (above; not its workers), or rank 0 under torchrun / srun.
    owner = place is None or (place.rank == 0 and distributed.SPAWNED not in os.environ)
    with run.lock() if owner else contextlib.nullcontext():
        if _already_done(run, place):  # finished by another process meanwhile
            return run
        collective = distributed.connect(cfg.runner.world_size, device, cfg.runner.timeout)
        try:
            if collective.rank == 0:
                run.start(cfg.runner.world_size)
            collective.barrier()
            resume = run.resume_step(cfg.runner.world_size)
            if resume and collective.rank == 0:
                print(f"resuming {run.path} from step {resume}")
            result = meta_train(cfg, run, data, device, collective, progress=progress and collective.rank == 0,
                                resume_step=resume)
            if collective.rank == 0:
                finish(cfg, run, data, device, result, progress)
        finally:
            collective.close()
    return run


def _already_done(run: RunDir, place: distributed.Place | None) -> bool:
    if run.done and (place is None or place.rank == 0):
        print(f"already done: {run.path}")
    return run.done


def finish(cfg: Config, run: RunDir, data: dict[str, Splits], device, result: dict, progress: bool) -> None:
    """Meta-test phi (final, and every saved ``metatest.at_steps``), then mark the run done."""
    steps = sorted(s for s in cfg.metatest.at_steps if (run.checkpoints / f"phi_{s}.pt").exists())
    rows, final = [], {}
    for phi_step in [*steps, "final"]:
        phi = run.load_phi(phi_step)
        for target in cfg.suite.targets:
            acc = meta_test(cfg, phi, TASKS.get(target), data[target], device, progress,
                            desc=f"meta-test {target} @ {phi_step}")
            step = result["steps"] if phi_step == "final" else phi_step
            inner = step * result["inner_steps"] // max(1, result["steps"])
            rows.append({"target": target, "phi_step": phi_step, "inner_steps": inner, "accuracy": acc})
            if phi_step == "final":
                final[target] = acc
    run.log("metatest", rows)
    run.finish({
        "method": cfg.method.name, "suite": cfg.suite.name, "seed": cfg.seed, "run_id": run.id,
        "inner_steps": result["inner_steps"], "wall_seconds": round(result["wall_seconds"], 3),
        "target_accuracy": final, "mean_accuracy": sum(final.values()) / len(final),
        "git_commit": git_commit(),
    })


def print_table(run: RunDir) -> None:
    s = run.summary()
    width = max(len(t) for t in s["target_accuracy"]) + 2
    print(f"\n{s['method']} on {s['suite']}, seed {s['seed']}: {run.path}")
    for target, acc in s["target_accuracy"].items():
        print(f"  {target:<{width}} {100 * acc:6.2f}")
    print(f"  {'mean':<{width}} {100 * s['mean_accuracy']:6.2f}")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        typed = validate(cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    try:
        run = execute(typed)
    except (RunFailed, RunBusy, FileNotFoundError) as e:  # FileNotFoundError: a dataset is missing
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    if run.done:
        print_table(run)
    if distributed.place_from_env() is not None:  # a rank under torchrun or srun
        distributed.exit_rank(0)


if __name__ == "__main__":
    main()
