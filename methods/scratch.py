"""Training from scratch: no meta-training; phi is the seed's random phi_0.

It is only meta-tested, with the same recipe, head init and target batches as every
other method, so it is the reference every meta-learned initialization must beat.

The authors' counterpart is ``train_tgt.py`` run without ``--src_name`` and ``--finetune``: line 101
builds a fresh ``get_model`` and nothing is loaded into it (lines 103-117 are skipped). There is no
meta-training script for it. Deviation from the authors' code: none in this policy. phi_0 is drawn
under ``torch.manual_seed(seed)`` (theirs from the unseeded global generator), with the model's own
init (``benchmark.models``); how the meta-test differs from ``train_tgt.py`` is in
``benchmark.core.metatest``.
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
