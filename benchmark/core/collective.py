"""Collectives over the task rows of one run, whichever processes hold them.

The population's averaging goes through a :class:`Collective`: one process holding every task
needs no communication; a run over W processes (``benchmark.runtime.distributed.connect``)
uses a :class:`ProcessGroup`. A collective over the tasks' rows is one all-gather (each rank's
rows padded to the largest shard), summed in task order, so any W gives bit-for-bit the phi of
W = 1: the shards are contiguous in task order and every other computation is per task.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


class Collective:
    """One process holding every task: no communication."""

    world_size = 1
    rank = 0
    rows_per_rank: list[int] = []  # how many task rows each rank holds; set by the runner

    def mean_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The mean of ``rows`` [n_local, P] over the rows of every process, in task order.

        The rows of every rank are gathered and summed as one [T, P] tensor, in the one
        order a single process would use, so every world size gives the same bits (an
        all-reduce of per-rank partial sums would round differently per layout)."""
        every = self.all_rows(rows)
        return every.sum(0) / every.shape[0]

    def all_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's rows, concatenated in rank (= task) order: [T, P]."""
        return rows.contiguous()

    def gather_rows(self, rows: list[dict]) -> list[dict]:
        """Every process's metric rows, on rank 0 (other ranks get their own back)."""
        return rows

    def share_rows(self, rows: list[dict]) -> list[dict]:
        """Every process's rows, in rank order, on every process."""
        return rows

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any."""
        return flag

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass


class ProcessGroup(Collective):
    def __init__(self, rank: int, world_size: int, device: torch.device):
        self.rank, self.world_size, self.device = rank, world_size, device

    def all_rows(self, rows):
        """One all-gather, each rank's rows padded to the largest shard."""
        counts = self.rows_per_rank
        if len(counts) != self.world_size or counts[self.rank] != rows.shape[0]:
            raise RuntimeError(f"rank {self.rank} holds {rows.shape[0]} rows; rows_per_rank is {counts}")
        buf = rows.new_zeros(max(counts), rows.shape[1])
        buf[: rows.shape[0]] = rows
        parts = [torch.empty_like(buf) for _ in range(self.world_size)]
        dist.all_gather(parts, buf)
        return torch.cat([part[:n] for part, n in zip(parts, counts)])

    def gather_rows(self, rows):
        out = [None] * self.world_size if self.rank == 0 else None
        dist.gather_object(rows, out, dst=0)
        return [r for part in out for r in part] if self.rank == 0 else rows

    def share_rows(self, rows):
        out = [None] * self.world_size
        dist.all_gather_object(out, rows)
        return [r for part in out for r in part]

    def any(self, flag):
        buf = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(buf)
        return bool(buf.item())

    def barrier(self):
        dist.barrier()

    def close(self):
        dist.destroy_process_group()
