"""iMAML (Rajeswaran, Finn, Kakade & Levine, NeurIPS 2019, "Meta-Learning with Implicit
Gradients", Sec. 3: Lemma 1, Algorithms 1 and 2).

The inner problem is theta_i = argmin L_train(theta) + lambda/2 ||theta - phi||^2, whose
implicit Jacobian gives the meta-gradient of task i as

    x_i = (I + H_i / lambda)^{-1} g_i,    H_i = Hessian of the inner objective at theta_i,
                                          g_i = grad L_val(theta_i),

solved approximately by ``cg_steps`` iterations of conjugate gradient from x = 0 using
Hessian-vector products only (forward-over-reverse, ``torch.func.jvp`` of
``torch.func.grad`` through ``functional_call`` on the learner). Every ``aggregate_every``
steps (K by default) phi takes a meta-optimizer step on mean_i x_i (a collective over
every task), and every K steps the learners are reset to phi. Authors' settings, used
here: lambda 0.5 (``reg_lambda``), 10 CG steps, meta step 0.1 with SGD.

What is computed, exactly, and how it deviates from the authors' code:
- The inner loop is the runner's plain SGD (momentum, weight decay): it has no proximal
  term lambda/2 ||theta - phi||^2, so theta_i is not the regularized inner solution the
  implicit gradient assumes; the formula is applied at the learner's current point all
  the same.
- H_i and g_i are both taken on learner i's validation batch of the current step (a fixed
  25% split of its training set, ``val_fraction``): the policy has no training batch, and
  the validation split is drawn from the same training distribution. H_i includes the
  inner loop's L2 weight decay (``train.weight_decay`` * I).
- The linear system is over the whole learner, body and head; only the body part of x_i
  enters phi (the head is not meta-learned). The identity block on the head amounts to
  a proximal term on the head as well.
- BatchNorm uses batch statistics (train mode) without touching the running statistics,
  which the functional transforms cannot mutate.
- CG stops early when the residual vanishes or the system shows non-positive curvature
  (H_i has eigenvalues below -lambda), returning the iterate so far.

Defaults for the embedded ``glyphs`` suite are untuned (no sweep was run): the authors'
lambda, CG steps and meta step, with K = 100 as for CTS and Reptile.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from omegaconf import II
from torch import nn
from torch.func import functional_call, grad, jvp

from methods.base import MetaConfig, Method, meta_optimizer, register_method, require


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, steps: int) -> torch.Tensor:
    """x ~ A^{-1} b for a symmetric positive-definite A given as ``matvec``, from x = 0."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    floor = (torch.finfo(b.dtype).eps * (b @ b).sqrt()) ** 2  # residual at machine precision
    for _ in range(steps):
        if rr <= floor:
            break
        Ap = matvec(p)
        curvature = p @ Ap
        if curvature <= 0:  # A is not positive definite along p: keep the iterate so far
            break
        alpha = rr / curvature
        x += alpha * p
        r -= alpha * Ap
        rr, rr_old = r @ r, rr
        p = r + (rr / rr_old) * p
    return x


def implicit_grad(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, g: torch.Tensor,
                  reg_lambda: float, cg_steps: int, weight_decay: float = 0.0) -> torch.Tensor:
    """(I + (H + weight_decay I) / reg_lambda)^{-1} g by CG, H the Hessian of ``loss_fn`` at the flat ``theta``."""
    grad_fn = grad(loss_fn)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        hv = jvp(grad_fn, (theta,), (v,))[1]
        return v + (hv + weight_decay * v) / reg_lambda

    return conjugate_gradient(matvec, g, cg_steps)


@contextlib.contextmanager
def batch_statistics_only(module: nn.Module) -> Iterator[None]:
    """BatchNorm normalizes with batch statistics and leaves its running statistics alone."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracked = [m.track_running_stats for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, t in zip(norms, tracked):
            m.track_running_stats = t


def flat_loss(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[Callable, torch.Tensor]:
    """The cross-entropy of ``module`` on (x, y) as a function of its flat parameter vector, and that vector."""
    names, shapes = zip(*[(n, p.shape) for n, p in module.named_parameters()])
    sizes = [s.numel() for s in shapes]

    def loss_fn(flat: torch.Tensor) -> torch.Tensor:
        params = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return F.cross_entropy(functional_call(module, params, (x,)), y)

    return loss_fn, torch.cat([p.detach().reshape(-1) for p in module.parameters()])


@dataclass
class IMAMLConfig(MetaConfig):
    name: str = "imaml"
    meta_lr: float = 0.1
    reset_every: int = 100
    aggregate_every: int = II(".reset_every")
    meta_optimizer: str = "sgd"  # sgd | adam
    reg_lambda: float = 0.5  # lambda of the proximal term
    cg_steps: int = 10
    val_fraction: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.meta_optimizer in ("sgd", "adam"), "method.meta_optimizer",
                f"must be one of sgd, adam, got {self.meta_optimizer!r}")
        require(self.reg_lambda > 0, "method.reg_lambda", f"must be > 0, got {self.reg_lambda}")
        require(self.cg_steps > 0, "method.cg_steps", f"must be > 0, got {self.cg_steps}")
        require(0 < self.val_fraction < 1, "method.val_fraction", f"must be in (0, 1), got {self.val_fraction}")


@register_method("imaml", display="iMAML", config=IMAMLConfig)
class IMAML(Method):
    needs_val = True

    def setup(self, pop, steps):
        super().setup(pop, steps)
        self.opt = meta_optimizer(self.cfg.meta_optimizer, pop.phi, self.cfg.meta_lr)

    def task_meta_grad(self, pop, i: int) -> torch.Tensor:
        """The body part of learner i's implicit meta-gradient x_i."""
        learner = pop.learners[i]
        x, y = pop.val_batches(i)
        with batch_statistics_only(learner):
            loss_fn, theta = flat_loss(learner, x, y)
            g = grad(loss_fn)(theta)
            xi = implicit_grad(loss_fn, theta, g, self.cfg.reg_lambda, self.cfg.cg_steps, pop.weight_decay)
        return xi[: pop.theta.shape[1]]  # the body's parameters come first in the learner

    def after_step(self, step, pop):
        if step % self.cfg.aggregate_every == 0:
            rows = torch.stack([self.task_meta_grad(pop, i) for i in range(len(pop))])
            pop.phi.grad = pop.collective.mean_rows(rows)
            self.opt.step()
        if step % self.cfg.reset_every == 0:
            pop.reset(hard=self.cfg.hard_reset)

    def state_dict(self):
        return {"opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.opt.load_state_dict(state["opt"])
