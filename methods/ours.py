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

The same as the authors' ``meta_train_ours.py``: every ``aggregate_period`` steps (1, line 23),
after the inner step, each task moves its copy of phi by beta * (theta_i - phi), ``share_params``
averages the copies (one flat all-reduce, ``utils.py`` lines 48-56) and each body is shifted by
phi_new - phi_old, the head excluded (lines 86-98); every K steps the reset (lines 193-204): soft
by default (line 204: body <- phi; head, momentum and BatchNorm running statistics kept), or, with
``--hard_reset``, a new model and optimizer, then body <- phi (lines 194-203), as
``hard_reset: true`` does here (each new head drawn from its task's own generator).

Deviation from the authors' code, in this policy: none. The mean is taken of the bodies rather
than of the per-task updated copies of phi, equal up to float rounding. Defaults: beta 0.1, K 100
(for the embedded suite, below); theirs beta 1e-2 (line 22), K 1000 (line 24). The runner's
differences, shared by every method, are listed in ``benchmark/core/train.py``.

Defaults for the embedded ``glyphs`` suite (400 steps, 8 sources): beta 0.1, K 100, selected by
the protocol of 2026-12-01 (``benchmark.tune``: 8 trials for every method on tuning seed 100,
scored on the validation scripts Lao, Ogham and Old Italic only; every trial is in
``benchmark/conf/selected/glyphs/ours.yaml``) with validation accuracy 64.4% (next: beta 0.082 /
K 200, 62.8%). They are trial 0, the earlier default, which a hand sweep had chosen on the test
targets; on validation data it still came first. The paper's own setting is beta 1e-2, K 1000
(suite=paper).
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


# The distribution of each tuned key (benchmark.tune); trial 0 is the default above.
SEARCH = {"meta_lr": INTERPOLATION, "reset_every": Resets()}


@register_method("ours", display="CTS (ours)", config=CTSConfig, search=SEARCH)
class CTS(MetaMethod):
    shift = True  # Reptile is this policy without the shift

    def update(self, step, pop):
        delta = ops.reptile_delta(pop.phi, pop.mean_theta(), self.cfg.meta_lr)
        pop.phi.add_(delta)
        if self.shift:
            ops.shift_(pop.theta, delta)
