"""Processes and devices. The runner owns them; methods never see them.

One run may span W processes (``runner.world_size``); the T source tasks are sharded
over them and phi is replicated. Three launchers end in the same code path, which
reads its rank from the environment:

- self-spawn: ``python -m benchmark.run runner.world_size=W`` starts W workers with a
  free port on localhost, watches them, and stops them all if one fails;
- ``torchrun --nproc_per_node=W -m benchmark.run runner.world_size=W`` (RANK, WORLD_SIZE...);
- SLURM ``srun``: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the job's first node.

:func:`connect` joins the processes into one :class:`benchmark.core.collective.ProcessGroup`.
Backends: NCCL on CUDA, gloo on CPU.
"""
from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from benchmark.core.collective import Collective, ProcessGroup


@dataclass(frozen=True)
class Place:
    rank: int
    world_size: int
    local_rank: int


def place_from_env() -> Place | None:
    """Where this process sits, if a launcher (self-spawn, torchrun, srun) said so."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return Place(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        env.setdefault("MASTER_ADDR", _slurm_first_node())
        env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
        return Place(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return None


def _slurm_first_node() -> str:
    nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST", "localhost")
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, timeout=30)
        return out.stdout.split()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return nodes.split(",")[0]


def device_for(name: str, place: Place | None) -> torch.device:
    """``auto``: the GPU the local rank names, or the CPU where there is none."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", (place.local_rank if place else 0) % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(name)


def check_device(name: str) -> None:
    """ValueError naming ``runner.device`` unless this machine has the device asked for.

    Run where the run computes, not where a sweep composes it (a SLURM login node may have
    no GPU): ``benchmark.run`` and ``execute`` call it before any data or folder."""
    if not name.startswith("cuda"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        raise ValueError(f"runner.device: {name!r} asked for, but torch sees no CUDA device on this machine "
                         "(use auto or cpu)")
    index = int(name.partition(":")[2] or 0)
    if index >= count:
        raise ValueError(f"runner.device: {name!r} asked for, but this machine has {count} CUDA device(s): "
                         f"cuda:0..cuda:{count - 1}")


def connect(world_size: int, device: torch.device, timeout_s: float) -> Collective:
    """Join the process group the environment describes (or none, for one process)."""
    place = place_from_env()
    if world_size == 1 and place is None:
        return Collective()
    if place is None or place.world_size != world_size:
        got = "no launcher environment" if place is None else f"a launcher world size of {place.world_size}"
        raise ValueError(f"runner.world_size: is {world_size} but this process has {got}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=place.rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return ProcessGroup(place.rank, world_size, device)


def exit_rank(code: int) -> None:
    """End a rank of a multi-process run once its work is done and its process group closed.

    It skips the interpreter's teardown: there, torch 2.14's gloo backend sometimes aborts
    the process ("terminate called without an active exception", SIGABRT, no Python
    frame; in 5 of 8 batches of three W = 3 test runs on 2 cores), which would fail a run whose
    every file is already written. Everything this process wrote is closed and renamed
    by then; only the standard streams need flushing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SPAWNED = "LSML_SPAWNED"  # set in self-spawned workers: their parent holds the run's lock
PARENT = "LSML_PARENT_PID"  # ... and the parent's pid: a worker dies with it (benchmark.runtime.worker)


def spawn(config_yaml: str, world_size: int, grace_s: float = 10.0) -> int:
    """Start ``world_size`` workers on this machine and wait; if one fails, stop the rest.

    Returns the exit code: 0, or the first failing worker's. Workers share this
    terminal, so a failing worker's traceback is shown as it happens. SIGTERM or SIGUSR2
    to this process (a sweep stopping its runs, SLURM's time limit) is passed on to the
    workers, which checkpoint and exit; this process waits for them, and so holds the
    run's lock, instead of dying and leaving them to run on unlocked.
    """
    port = str(free_port())
    procs: list[subprocess.Popen] = []
    stopping: list[int] = []

    def forward(signum, frame) -> None:
        stopping.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGUSR2)}
    try:
        for rank in range(world_size):
            env = {**os.environ, SPAWNED: "1", PARENT: str(os.getpid()), "RANK": str(rank),
                   "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": port}
            # The config on stdin, not in a temp file: a parent killed with -9 leaves no file behind.
            proc = subprocess.Popen([sys.executable, "-m", "benchmark.runtime.worker", "-"], env=env, stdin=subprocess.PIPE,
                                    text=True)
            procs.append(proc)
            proc.stdin.write(config_yaml)
            proc.stdin.close()
        while True:
            codes = [p.poll() for p in procs]
            if stopping:  # each worker checkpoints its step and exits: wait for all of them
                if all(c is not None for c in codes):
                    return 128 + stopping[0]
                time.sleep(0.2)
                continue
            failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                rank, code = failed[0]
                print(f"error: rank {rank} exited with code {code}; stopping the other ranks", file=sys.stderr)
                return code
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(procs, grace_s)


def _stop(procs: list[subprocess.Popen], grace_s: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
