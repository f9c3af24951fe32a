"""Training from scratch: no meta-training; phi is the seed's random phi_0.

It is only meta-tested, with the same recipe, head init and target batches as every
other method, so it is the reference every meta-learned initialization must beat.
"""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import Method, MethodConfig, register_method


@dataclass
class ScratchConfig(MethodConfig):
    name: str = "scratch"


@register_method("scratch", display="Scratch", config=ScratchConfig)
class Scratch(Method):
    meta_trains = False
