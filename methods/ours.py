"""Continual Trajectory Shifting (CTS; Shin, Lee, Gong & Hwang, ICML 2021).

Every ``aggregate_every`` steps (1 in the paper):
    Delta   = beta * (mean_i theta_i - phi)
    phi     <- phi + Delta
    theta_i <- theta_i + Delta          (the shift)
and every K steps theta_i <- phi (the reset). The shift is the first-order Taylor
estimate U_k(phi + Delta) ~ U_k(phi) + Delta, with the Jacobian dU_k/dphi taken as
the identity, so phi is meta-updated every step without restarting trajectories.
The inner optimizer state survives the reset unless ``hard_reset`` is set, as in
the authors' ``--no_hard_reset`` default. Heads are never shifted or reset.

Deviation from the authors' code: none in the rule; the all-reduce of the bodies is
one flat collective in the runner rather than one per tensor.

Defaults for the embedded ``glyphs`` suite come from a sweep recorded in
``benchmark/conf/grid/tune_ours.yaml``.
"""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import MethodConfig, register_method
from methods.reptile import Reptile


@dataclass
class CTSConfig(MethodConfig):
    name: str = "ours"
    meta_lr: float = 0.1
    reset_every: int = 200
    aggregate_every: int = 1


@register_method("ours", display="CTS (ours)", config=CTSConfig)
class CTS(Reptile):
    shift = True
