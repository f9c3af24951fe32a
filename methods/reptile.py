"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms").

Every K inner steps: phi <- phi + beta * (mean_i theta_i - phi), then theta_i <- phi.

It is CTS's policy without the shift (``methods/ours.py``). ``aggregate_every`` defaults to K; a smaller
value updates phi more often while the trajectories continue unshifted (an ablation).

Deviation from the authors' code, in this policy (the runner's differences, shared by every method,
are not repeated here):
- ``aggregate_every`` < K has no counterpart: their ``aggregate_period`` flag (line 23) reaches
  ``train_step`` (line 174), which ignores it (lines 66-84). At the default, aggregate_every = K.
- Theirs beta 1e-2 (line 22), K 1000 (line 24); tuned here (``benchmark/conf/selected/<suite>/``).

What matches the authors' code, line by line: ``docs/fidelity.md``, section Reptile.
"""
from __future__ import annotations

from dataclasses import dataclass

from omegaconf import II

from methods.base import MetaConfig, register_method
from methods.ours import CTS
from methods.search import INTERPOLATION, Resets


@dataclass
class ReptileConfig(MetaConfig):
    name: str = "reptile"
    meta_lr: float = 1.2
    reset_every: int = 25
    aggregate_every: int = II(".reset_every")


# The distribution of each tuned key (benchmark.tune draws every trial from it).
SEARCH = {"meta_lr": INTERPOLATION, "reset_every": Resets()}


@register_method("reptile", display="Reptile", config=ReptileConfig, search=SEARCH)
class Reptile(CTS):
    shift = False
