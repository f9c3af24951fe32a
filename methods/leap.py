"""Leap (Flennerhag, Moreau, Lawrence & Damianou, ICLR 2019, "Transferring Knowledge
across Learning Processes"; official code amzn/metalearn-leap, whose ``Updater`` the CTS
authors' ``meta_train_leap.py`` reuses as their ``leap.py``).

phi is pulled towards initializations whose learning processes are short on the loss
surface. Each task's trajectory theta^0 = phi, theta^1, ..., theta^K is a curve of points
(theta^k, l(theta^k)); for every segment k -> k+1, with

    d_theta = theta^{k+1} - theta^k,   d_loss = l(theta^{k+1}) - l(theta^k),

the meta-gradient gains the increment (the gradient of the paper's pull-forward
objective, Algorithm 1, with the Jacobian of theta^k in phi taken as the identity, as
``Updater.increment_grad`` computes it, ``leap.py`` lines 94-133):

    -(d_theta + d_loss * grad l(theta^k))  /  ||(d_theta, d_head, d_loss)||

The division is the path-length form d_1 (``norm``; without it, the energy form d_2).
The stabilizer (``stabilizer``, the paper's mu) uses d_loss <- -|d_loss|, so a segment
on which the loss rose still pulls towards lower loss. ``loss_term: false`` drops the
loss coordinate: the increment is -d_theta [/ ||(d_theta, d_head)||], the plain path
length. Increments are summed over the segments and averaged over every task of the run
(one collective); every ``aggregate_every`` steps (K by default) the sum is the gradient
of a meta-optimizer step on phi (SGD), and every K steps the learners are reset to phi.

The same as the authors' ``meta_train_leap.py`` and ``leap.py``:
- The increment's form (``leap.py`` lines 107-133; the stabilizer, lines 109-110), with ``norm``,
  ``loss_term`` and ``stabilizer`` all on: the ``Updater`` defaults (line 73), which their script
  keeps (line 137).
- Only the body is meta-learned (``base_param``, lines 128-137), so d_theta and grad l are over the
  body, while the segment length also counts the head's step d_head: their norm runs over every
  parameter of the model, not its buffers (``leap.py`` lines 42-60, 112-113).
- The sum is averaged over tasks (``share_grads``, line 179) and applied as a plain SGD step at every
  reset step (lines 178-182), then the reset: soft (line 193) or hard (lines 183-193).

Deviation from the authors' code, in this policy (the runner's differences, shared by every method,
are not repeated here):
- Pairing. After inner step k they record (theta^k, L_k(theta^{k-1}), grad L_k(theta^{k-1})): the
  parameters after the step, with the step's own training loss and gradient, taken before it (lines
  63-72). The increment at step k so pairs segment k's d_theta = theta^k - theta^{k-1} with
  d_loss = L_k(theta^{k-1}) - L_{k-1}(theta^{k-2}), the loss change over segment k-1, and with
  grad L_{k-1}(theta^{k-2}), the gradient at segment k-1's start. Here segment k uses its own:
  d_loss = l_k(theta^k) - l_{k-1}(theta^{k-1}) and grad l_{k-1}(theta^{k-1}).
- First segment. Their ``Updater`` only records at a trajectory's first step (``leap.py`` lines
  82-87; ``updater.initialize()`` at line 194 after every reset, and a fresh ``Updater`` at the start),
  so segment 1's d_theta (phi -> theta^1) never counts: K - 1 increments per trajectory, and the last
  segment's loss change is never measured. Here all K segments count. The run's first point is
  (phi, the heads after step 1), scored on step 1's validation batch like the point after step 1 (the
  runner gives the policy no look at the learners before the first inner step, so that segment's
  d_head is 0); later trajectories start at the reset, where the current heads are exact.
- The batch. Theirs is the training batch: its loss and gradient come free with the inner step
  (lines 63-71). Here l and grad l come from learner i's validation batch of the step, by an extra
  forward and backward at the updated point (the runner has consumed the training loss and cleared
  its gradient before ``after_step``): with the loss term, Leap costs about twice an inner step.
  That forward runs in train mode, so it also moves the BatchNorm running statistics, once more
  per step.
- The data. With the loss term the runner holds 25% of each source's training set out for
  validation (``val_fraction``, fixed by (seed, task)), so Leap's inner loop trains on 75%; theirs
  trains on all of it (line 103: the three-value ``get_dataloader``, which has no split). With
  ``loss_term: false`` Leap needs no validation data and no extra compute.
- A zero-length segment contributes nothing here (its length is clamped away from 0); theirs divides
  by 0 (``leap.py`` line 128).
- Their script's sources are the 224-px set (lines 48-51), not the paper's eight; here Leap runs on
  the suite's sources, like every method.
- ``aggregate_every`` < K and ``meta_optimizer: adam`` have no counterpart.
- Defaults: beta 0.3, K 100 (for the embedded suite, below); theirs beta 1e-2 (line 23), K 1000
  (line 25).

Defaults for the embedded ``glyphs`` suite: K = 100 as for CTS and Reptile, the
official norm, stabilizer and loss term, and meta step 0.3, from a sweep of mean target
accuracy on seed 100 (outside the comparison's seeds 0-2; scratch there: 18.5%): beta
0.03: 31.6%, 0.1: 45.5%, 0.3: 58.1%, 1: 19.9% (diverged). With ``norm`` every segment
adds a vector of length about 1, so the meta-gradient grows with K and beta * K is what
carries over: the CTS authors' 0.01 at K = 1000 is 0.1 at K = 100 (also the official
Leap Omniglot value), which this short budget of four meta-updates finds too small. A
check of 100 steps on four glyph sources: one meta-update at beta 0.1 moved phi by 1.7,
Reptile's (beta 1) by 2.7.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from omegaconf import II

from methods.base import GradConfig, GradMethod, register_method


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
class LeapConfig(GradConfig):
    name: str = "leap"
    meta_lr: float = 0.3
    reset_every: int = 100
    aggregate_every: int = II(".reset_every")
    norm: bool = True  # path length d_1 (True) or energy d_2 (False)
    loss_term: bool = True  # include the loss coordinate (needs validation batches)
    stabilizer: bool = True  # d_loss <- -|d_loss|


class Point(NamedTuple):
    """Where every local trajectory is: bodies [T, P], all heads (flat), and, with the loss
    term, the validation losses [T] and body gradients [T, P] there."""

    theta: torch.Tensor
    heads: torch.Tensor
    loss: torch.Tensor | None
    grad: torch.Tensor | None


@register_method("leap", display="Leap", config=LeapConfig)
class Leap(GradMethod):
    def __init__(self, cfg: LeapConfig):
        super().__init__(cfg)
        # The loss coordinate is scored on validation batches (see the module docstring).
        self.needs_val = cfg.loss_term

    def setup(self, pop, steps):
        super().setup(pop, steps)
        self.meta_grad = torch.zeros_like(pop.theta)
        self.prev: Point | None = None  # the last point of every local trajectory
        # which learner each head entry of the flat buffer belongs to (heads follow the bodies in W)
        sizes = [sum(p.numel() for p in learner.head.parameters()) for learner in pop.learners]
        self.head_owner = torch.repeat_interleave(torch.arange(len(sizes), device=pop.phi.device),
                                                  torch.tensor(sizes, device=pop.phi.device))

    def point(self, pop, at_phi: bool = False) -> Point:
        """The current point of every local trajectory; ``at_phi``: with the bodies at phi."""
        saved = pop.theta.clone() if at_phi else None
        if at_phi:
            pop.theta.copy_(pop.phi.expand_as(pop.theta))
        theta, heads = pop.theta.clone(), pop.heads().clone()
        loss, grad = pop.val_losses_and_grads() if self.cfg.loss_term else (None, None)
        if at_phi:
            pop.theta.copy_(saved)
        return Point(theta, heads, loss, grad)

    def after_step(self, step, pop):
        if self.prev is None:  # the run's first trajectory starts at phi
            self.prev = self.point(pop, at_phi=True)
        prev, current = self.prev, self.point(pop)
        head_sq = torch.zeros(len(pop), device=pop.phi.device).index_add_(
            0, self.head_owner, (current.heads - prev.heads).square())
        self.meta_grad += leap_increment(prev.theta, current.theta, prev.grad, prev.loss, current.loss,
                                         other_sq=head_sq, norm=self.cfg.norm, stabilizer=self.cfg.stabilizer)
        self.prev = current
        if step % self.cfg.aggregate_every == 0:
            pop.phi.grad = pop.collective.mean_rows(self.meta_grad)
            self.opt.step()
            self.meta_grad.zero_()
        if step % self.cfg.reset_every == 0:
            pop.reset(hard=self.cfg.hard_reset)
            self.prev = self.point(pop)  # the next trajectory starts at phi with the current heads

    def state_dict(self):
        return {**super().state_dict(), "meta_grad": self.meta_grad.clone(),
                "prev": None if self.prev is None else tuple(self.prev)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.meta_grad.copy_(state["meta_grad"])
        self.prev = None if state["prev"] is None else Point(*state["prev"])
