"""iMAML (Rajeswaran, Finn, Kakade & Levine, NeurIPS 2019, "Meta-Learning with Implicit
Gradients", Sec. 3: Lemma 1, Algorithms 1 and 2), as the CTS authors'
``meta_train_imaml.py`` runs it in the many-shot setting.

The inner problem is theta_i = argmin L_train(theta) + lambda/2 ||theta - phi||^2, whose
implicit Jacobian gives task i's meta-gradient

    x_i = (I + H_i / lambda)^{-1} g_i,    H_i = Hessian of the training loss at theta_i,
                                          g_i = grad L_val(theta_i),

computed by ``cg_steps`` iterations of conjugate gradient from x = 0 with Hessian-vector
products only (``torch.func.vjp`` of ``torch.func.grad`` through ``functional_call``, the
pullback built once per task and reused by every iteration). Every ``aggregate_every``
steps (K by default) phi takes a meta-optimizer step on mean_i x_i (a collective over
every task), and every K steps the learners are reset to phi. Authors' settings: lambda 0.5
(``reg_lambda``), 10 CG steps, no damping (``cg_damping``, their ``cg_damp``: (1 + cg_damping)
I + H / lambda), meta step 0.1 with SGD; the defaults here keep their CG steps, damping and SGD.
``docs/fidelity.md`` also says why, on the embedded suite, the CG iterate is not the implicit gradient.

Deviation from the authors' code, in this policy (the runner's differences, shared by every method,
are not repeated here):
- H_i's batch. Theirs is the step's training batch: line 137 forwards that step's (x, y) again at the
  updated theta, and line 138 differentiates it with ``create_graph``. Here it is learner i's
  validation batch of the step: the runner hands the policy no training batch.
- g_i's batches. Theirs average ``val_steps`` = 10 batches (lines 36, 142-151). Before their first
  reset ``val_iter`` is ``train_iter`` (line 209; the validation iterator, line 210, is commented out),
  so their first meta-update averages 10 training batches; from the first reset on, 10 validation
  batches (line 298). Here g_i is one validation batch, the same batch as H_i's.
- The split. Theirs: an unseeded ``random_split``, int(0.75 n) images to train and the rest to
  validate (``dataloader.py`` lines 38, 49-50), redrawn with new shuffled loaders at every reset
  (lines 291-298). Here a split fixed by (seed, task), 25% to validate (``val_fraction``), as in
  ``fomaml``.
- BatchNorm running statistics: their 11 train-mode forwards per meta-update (lines 137, 148) update
  them. Here they are left alone: the functional transforms cannot mutate them.
- CG's stop. Theirs always runs 10 iterations (lines 95-103) and would divide by zero if the
  residual or p^T A p vanished; here CG stops once the residual is below 1e-10 of its start or
  p^T A p is 0. (Their line 90 also spends one Hessian-vector product on A x for x = 0.)
- ``aggregate_every`` < K and ``meta_optimizer: adam`` have no counterpart.
- Theirs beta 0.1 (line 29), lambda 0.5 (line 34), K 1000 (line 22); tuned here
  (``benchmark/conf/selected/<suite>/``).

What matches the authors' code, line by line: ``docs/fidelity.md``, section iMAML.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import II
from torch.func import grad, vjp

from methods.base import GradConfig, GradMethod, register_method, require
from methods.search import META_GRADIENT, LogUniform, Resets


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` iterations of CG on A x = b from x = 0, A symmetric given as ``matvec``."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    floor = 1e-20 * rr  # a relative residual of 1e-10: solved, and the next step would divide ~0 by ~0
    for _ in range(steps):
        if rr <= floor:
            break
        Ap = matvec(p)
        curvature = p @ Ap
        if curvature == 0:
            break
        alpha = rr / curvature
        x += alpha * p
        r -= alpha * Ap
        rr, rr_old = r @ r, rr
        p = r + (rr / rr_old) * p
    return x


def implicit_grad(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, g: torch.Tensor | None = None,
                  *, reg_lambda: float, cg_steps: int, cg_damping: float = 0.0) -> torch.Tensor:
    """((1 + cg_damping) I + H / reg_lambda)^{-1} g by CG, H the Hessian of ``loss_fn`` at the flat
    ``theta``; g defaults to the gradient of ``loss_fn`` there (H and g on one batch)."""
    # Reverse-over-reverse: one pullback of the gradient, reused by every CG iteration. H is
    # symmetric, so the vector-Jacobian product of grad is the Hessian-vector product.
    grad_at_theta, pullback = vjp(grad(loss_fn), theta)
    g = grad_at_theta.detach() if g is None else g

    def matvec(v: torch.Tensor) -> torch.Tensor:
        return (1 + cg_damping) * v + pullback(v)[0].detach() / reg_lambda

    return conjugate_gradient(matvec, g, cg_steps)


@dataclass
class IMAMLConfig(GradConfig):
    name: str = "imaml"
    meta_lr: float = 3.7
    reset_every: int = 100
    aggregate_every: int = II(".reset_every")
    reg_lambda: float = 3.6  # lambda of the proximal term
    cg_steps: int = 10
    cg_damping: float = 0.0  # added to the identity: (1 + cg_damping) I + H / lambda

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.reg_lambda > 0, "method.reg_lambda", f"must be > 0, got {self.reg_lambda}")
        require(self.cg_steps > 0, "method.cg_steps", f"must be > 0, got {self.cg_steps}")
        require(self.cg_damping >= 0, "method.cg_damping", f"must be >= 0, got {self.cg_damping}")


# The distribution of each tuned key (benchmark.tune draws every trial from it).
SEARCH = {"meta_lr": META_GRADIENT, "reset_every": Resets(),
          "reg_lambda": LogUniform(0.1, 10.0, why="the proximal weight: 2 decades around the authors' 0.5")}


@register_method("imaml", display="iMAML", config=IMAMLConfig, search=SEARCH)
class IMAML(GradMethod):
    def meta_grad(self, step, pop):
        rows = []
        for i in range(len(pop)):  # learner i's implicit meta-gradient x_i, over the body
            with pop.val_loss(i) as (loss_fn, theta):
                rows.append(implicit_grad(loss_fn, theta, reg_lambda=self.cfg.reg_lambda, cg_steps=self.cfg.cg_steps,
                                          cg_damping=self.cfg.cg_damping))
        return pop.mean_rows(torch.stack(rows))
