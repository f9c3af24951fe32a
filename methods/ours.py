"""Continual Trajectory Shifting (CTS; Shin, Lee, Gong & Hwang, ICML 2021).

Every ``aggregate_every`` steps (1 in the paper):
    Delta   = beta * (mean_i theta_i - phi)
    phi     <- phi + Delta
    theta_i <- theta_i + Delta          (the shift)
and every K steps theta_i <- phi (the reset). The shift is the first-order Taylor
estimate U_k(phi + Delta) ~ U_k(phi) + Delta, with the Jacobian dU_k/dphi taken as
the identity, so phi is meta-updated every step without restarting trajectories.
The inner optimizer state survives the reset unless ``hard_reset`` is set, as in
the authors' ``--no_hard_reset`` default. Heads are never shifted; a hard reset re-draws them.

Deviation from the authors' code, in this policy: none. The mean is taken of the bodies rather
than of the per-task updated copies of phi, equal up to float rounding. Theirs beta 1e-2 (line 22),
K 1000 (line 24); tuned here (``benchmark/conf/selected/<suite>/``). The runner's differences,
shared by every method, are listed in ``benchmark/core/train.py``.

What matches the authors' code, line by line: ``docs/fidelity.md``, section CTS.
"""
from __future__ import annotations

from dataclasses import dataclass

from methods import ops
from methods.base import MetaConfig, MetaMethod, register_method
from methods.search import INTERPOLATION, Resets


@dataclass
class CTSConfig(MetaConfig):
    name: str = "ours"
    meta_lr: float = 0.13
    reset_every: int = 50
    aggregate_every: int = 1


# The distribution of each tuned key (benchmark.tune draws every trial from it).
SEARCH = {"meta_lr": INTERPOLATION, "reset_every": Resets()}


@register_method("ours", display="CTS (ours)", config=CTSConfig, search=SEARCH)
class CTS(MetaMethod):
    shift = True  # Reptile is this policy without the shift

    def update(self, step, pop):
        delta = ops.reptile_delta(pop.phi, pop.mean_theta(), self.cfg.meta_lr)
        pop.phi.add_(delta)
        if self.shift:
            ops.shift_(pop.theta, delta)
