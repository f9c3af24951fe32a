"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms").

Every K inner steps: phi <- phi + beta * (mean_i theta_i - phi), then theta_i <- phi.

It is CTS's policy without the shift. ``aggregate_every`` defaults to K; a smaller
value updates phi more often while the trajectories continue unshifted (an ablation).

Defaults for the embedded ``glyphs`` suite (400 steps, 8 sources, seed 0), from a small
sweep of mean target accuracy: beta 1 / K 50: 59.6%; beta 1 / K 100: 55.1%; beta 1 /
K 200: 49.5%. Chosen: beta 1, K 50.
"""
from __future__ import annotations

from dataclasses import dataclass

from omegaconf import II

from methods.base import MetaConfig, register_method
from methods.ours import CTS


@dataclass
class ReptileConfig(MetaConfig):
    name: str = "reptile"
    meta_lr: float = 1.0
    reset_every: int = 50
    aggregate_every: int = II(".reset_every")


@register_method("reptile", display="Reptile", config=ReptileConfig)
class Reptile(CTS):
    shift = False
