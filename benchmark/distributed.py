"""Collectives over the tasks of a run. The runner owns them; methods never see them.

A single process needs no communication; ``Collective`` is that case. The
multi-process version all-reduces one flat buffer per call (sum of rows plus the
row count), which is correct for uneven shards.
"""
from __future__ import annotations

import torch


class Collective:
    """One process holding every task."""

    world_size = 1
    rank = 0

    def all_sum(self, buf: torch.Tensor) -> torch.Tensor:
        return buf

    def mean_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The mean of ``rows`` [n_local, P] over the rows of every process."""
        buf = torch.empty(rows.shape[1] + 1, dtype=rows.dtype, device=rows.device)
        torch.sum(rows, 0, out=buf[:-1])
        buf[-1] = rows.shape[0]
        self.all_sum(buf)
        return buf[:-1] / buf[-1]

    def gather_rows(self, rows: list[dict]) -> list[dict]:
        """Every process's metric rows, on rank 0 (other ranks get their own back)."""
        return rows
