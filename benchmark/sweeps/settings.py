"""How a sweep's runs are launched: a grid's ``local:`` and ``slurm:`` blocks, which
``local.<key>=`` and ``slurm.<key>=`` on the command line override."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]  # the project: jobs import benchmark/ from here


@dataclass
class LocalSettings:
    """``local.<key>=`` on the command line (or a grid's ``local:`` block)."""

    jobs: int = 0  # runs at once; 0: cores // the cores one run keeps busy

    def __post_init__(self) -> None:
        if self.jobs < 0:
            raise ValueError(f"local.jobs: must be >= 0, got {self.jobs}")


@dataclass
class SlurmSettings:
    """A grid's ``slurm:`` block; ``slurm.<key>=`` on the command line overrides it."""

    partition: Optional[str] = None  # None: the cluster's default partition
    time_min: int = 60  # per job; near the limit the run checkpoints and submitit requeues it
    cpus_per_task: int = 2  # per rank
    mem_gb: float = 0  # per node, i.e. for all ranks of a run; 0: the partition's default
    gpus_per_task: int = 0  # per rank
    array_parallelism: int = 64  # jobs of one array running at once
    signal_delay_s: int = 90  # SIGUSR2 this long before the time limit: time to finish a step
    max_num_timeout: int = 10  # requeues after hitting the time limit (preemptions don't count)
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None

    def __post_init__(self) -> None:
        for key in ("time_min", "cpus_per_task", "array_parallelism", "signal_delay_s"):
            if getattr(self, key) <= 0:
                raise ValueError(f"slurm.{key}: must be > 0, got {getattr(self, key)}")
        for key in ("mem_gb", "gpus_per_task", "max_num_timeout"):
            if getattr(self, key) < 0:
                raise ValueError(f"slurm.{key}: must be >= 0, got {getattr(self, key)}")

    def executor_parameters(self, world_size: int) -> dict:
        """submitit parameters for runs of ``world_size`` ranks: one task per rank, on one node."""
        params = {
            "name": "lsml", "timeout_min": self.time_min, "nodes": 1, "tasks_per_node": world_size,
            "cpus_per_task": self.cpus_per_task, "slurm_array_parallelism": self.array_parallelism,
            "slurm_signal_delay_s": self.signal_delay_s,
            # The job's python imports benchmark/ (the pickled callable) wherever it starts.
            "slurm_setup": [f"export PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"],
        }
        optional = {"slurm_partition": self.partition, "mem_gb": self.mem_gb, "slurm_gpus_per_task": self.gpus_per_task,
                    "slurm_account": self.account, "slurm_qos": self.qos, "slurm_constraint": self.constraint}
        return params | {k: v for k, v in optional.items() if v}
