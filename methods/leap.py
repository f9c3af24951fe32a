"""Leap (Flennerhag, Moreau, Lawrence & Damianou, ICLR 2019, "Transferring Knowledge
across Learning Processes"; official code amzn/metalearn-leap, whose ``Updater`` the CTS
authors' ``meta_train_leap.py`` reuses as their ``leap.py``), as the CTS authors run it.

phi is pulled towards initializations whose learning processes are short on the loss
surface. After inner step k each learner records the point (theta^k, L_k, g_k): its
parameters after the step, with the step's own training loss and body gradient, both
taken before it, at theta^{k-1} (``meta_train_leap.py`` lines 63-72). From the second step
of a trajectory on, the meta-gradient gains, per learner (``Updater.increment_grad``,
``leap.py`` lines 94-133; the gradient of the paper's pull-forward objective, Algorithm 1,
with the Jacobian of theta in phi taken as the identity):

    d_theta = theta^k - theta^{k-1},   d_loss = L_k - L_{k-1}   (-|d_loss| under the stabilizer)
    increment = -(d_theta + d_loss * g_{k-1})  /  ||(d_theta, d_head, d_loss)||

The division is the path-length form d_1 (``norm``; without it, the energy form d_2).
The stabilizer (``stabilizer``, the paper's mu) makes a segment on which the loss rose
still pull towards lower loss. ``loss_term: false`` drops the loss coordinate: the
increment is -d_theta [/ ||(d_theta, d_head)||], the plain path length. Increments are
summed and averaged over every task of the run (one collective); every ``aggregate_every``
steps (K by default) the sum is the gradient of a meta-optimizer step on phi (SGD), and
every K steps the learners are reset to phi and start a new trajectory.

Deviation from the authors' code, in this policy (the runner's differences, shared by every method,
are listed in ``benchmark/core/train.py``):
- A zero-length segment contributes nothing here (its length is clamped away from 0); theirs divides
  by 0 (``leap.py`` line 128).
- Their script's sources are the 224-px set (lines 48-51), not the paper's eight; here Leap runs on
  the suite's sources, like every method.
- ``aggregate_every`` < K and ``meta_optimizer: adam`` have no counterpart.
- Theirs beta 1e-2 (line 23), K 1000 (line 25); tuned here (``benchmark/conf/selected/<suite>/``).

What matches the authors' code, line by line: ``docs/fidelity.md``, section Leap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from omegaconf import II

from methods.base import GradMethod, MetaOptConfig, register_method
from methods.search import INTERPOLATION, Resets


def leap_increment(theta_prev: torch.Tensor, theta_next: torch.Tensor, grad_prev: torch.Tensor | None = None,
                   loss_prev: torch.Tensor | None = None, loss_next: torch.Tensor | None = None, *,
                   other_sq: torch.Tensor | None = None, norm: bool = True, stabilizer: bool = True) -> torch.Tensor:
    """Leap's meta-gradient increment for one segment of every trajectory (rows [T, P]).

    With losses [T]: -(d_theta + d_loss * grad_prev), d_loss = -|d_loss| under the
    stabilizer. Without: -d_theta. ``norm`` divides row i by the segment's length
    ||(d_theta_i, d_loss_i)||, plus ``other_sq[i]``, the squared step of the coordinates
    that are not meta-learned (the heads), under the square root.
    """
    d_theta = theta_next - theta_prev
    if loss_prev is None:
        d_loss = torch.zeros(len(d_theta), dtype=d_theta.dtype, device=d_theta.device)
        increment = -d_theta
    else:
        d_loss = loss_next - loss_prev
        if stabilizer:
            d_loss = -d_loss.abs()
        increment = -(d_theta + d_loss[:, None] * grad_prev)
    if norm:
        sq = d_theta.square().sum(1) + d_loss.square()
        length = (sq if other_sq is None else sq + other_sq).sqrt()
        increment /= length.clamp_min(torch.finfo(length.dtype).tiny)[:, None]
    return increment


@dataclass
class LeapConfig(MetaOptConfig):
    name: str = "leap"
    meta_lr: float = 0.51
    reset_every: int = 50
    aggregate_every: int = II(".reset_every")
    norm: bool = True  # path length d_1 (True) or energy d_2 (False)
    loss_term: bool = True  # include the loss coordinate
    stabilizer: bool = True  # d_loss <- -|d_loss|


class Point(NamedTuple):
    """Where every local trajectory is after a step: bodies [T, P], all heads (flat), and,
    with the loss term, the step's training losses [T] and body gradients [T, P], taken
    before it."""

    theta: torch.Tensor
    heads: torch.Tensor
    loss: torch.Tensor | None
    grad: torch.Tensor | None


# The distribution of each tuned key (benchmark.tune draws every trial from it).
SEARCH = {"meta_lr": INTERPOLATION, "reset_every": Resets((2, 5) + Resets.ladder, why=(
    "the shared ladder extended down to 2: Leap chose its smallest rung, 10, at 400 steps"))}


@register_method("leap", display="Leap", config=LeapConfig, search=SEARCH)
class Leap(GradMethod):
    needs_val = False

    def setup(self, pop):
        super().setup(pop)
        self.path_grad = torch.zeros_like(pop.theta)  # the meta-gradient summed over this trajectory's segments
        self.prev: Point | None = None  # the last point of every local trajectory; None after a reset
        self.step_loss: tuple[torch.Tensor, torch.Tensor] | tuple[None, None] = (None, None)

    def before_step(self, step, pop):
        if self.cfg.loss_term:  # this step's training loss and gradient, at the pre-step point
            self.step_loss = (pop.train_losses.clone(), pop.body_grads().clone())

    def follow(self, step, pop):
        current = Point(pop.theta.clone(), pop.heads().clone(), *self.step_loss)
        prev = self.prev
        if prev is not None:
            self.path_grad += leap_increment(prev.theta, current.theta, prev.grad, prev.loss, current.loss,
                                             other_sq=pop.heads_sq(current.heads - prev.heads), norm=self.cfg.norm,
                                             stabilizer=self.cfg.stabilizer)
        self.prev = current

    def meta_grad(self, step, pop):
        mean = pop.mean_rows(self.path_grad)
        self.path_grad.zero_()
        return mean

    def after_reset(self, pop):
        self.prev = None  # the Updater's initialize(): the next trajectory's first step only records

    def state_dict(self):
        return {**super().state_dict(), "meta_grad": self.path_grad.clone(),
                "prev": None if self.prev is None else tuple(self.prev)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.path_grad.copy_(state["meta_grad"])
        self.prev = None if state["prev"] is None else Point(*state["prev"])
