"""FOMAML++: FOMAML plus Continual Trajectory Shifting (Shin et al., ICML 2021, Sec. 5).

As ``fomaml``, but every meta-update Delta = phi_new - phi_old also shifts each
learner, theta_i <- theta_i + Delta, so phi can be updated every step without
restarting the trajectories; they are reset every K steps.
"""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import register_method
from methods.fomaml import FOMAML, FOMAMLConfig


@dataclass
class FOMAMLppConfig(FOMAMLConfig):
    name: str = "fomaml_pp"
    meta_lr: float = 0.3  # FOMAML's tuned value; not tuned separately
    reset_every: int = 100
    aggregate_every: int = 1


@register_method("fomaml_pp", display="FOMAML++", config=FOMAMLppConfig)
class FOMAMLpp(FOMAML):
    shift = True
