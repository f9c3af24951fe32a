"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms").

Every K inner steps: phi <- phi + beta * (mean_i theta_i - phi), then theta_i <- phi.

``aggregate_every`` defaults to K. A smaller value updates phi more often while the
trajectories continue unshifted; with the shift added this becomes CTS (``ours``).

Defaults for the embedded ``glyphs`` suite (600 steps, 8 sources): see
``methods/ours.py`` for the sweep; Reptile's best K there was 100 with beta 1.0.
"""
from __future__ import annotations

from dataclasses import dataclass

from omegaconf import II

from methods import ops
from methods.base import Method, MethodConfig, register_method


@dataclass
class ReptileConfig(MethodConfig):
    name: str = "reptile"
    meta_lr: float = 1.0
    reset_every: int = 100
    aggregate_every: int = II(".reset_every")


@register_method("reptile", display="Reptile", config=ReptileConfig)
class Reptile(Method):
    shift = False

    def after_step(self, step, pop):
        if step % self.cfg.aggregate_every == 0:
            delta = ops.reptile_delta(pop.phi, pop.mean_theta(), self.cfg.meta_lr)
            pop.phi.add_(delta)
            if self.shift:
                ops.shift_(pop.theta, delta)
        if step % self.cfg.reset_every == 0:
            pop.reset(hard=self.cfg.hard_reset)
