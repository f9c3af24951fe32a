"""FOMAML++: first-order MAML with Continual Trajectory Shifting (Shin et al., ICML 2021,
Sec. 5), as the authors' ``meta_train_fomaml_ours.py`` defines it.

Every ``aggregate_every`` steps (1 in the paper), *before* the inner step and with the
gradients of that step's training batch, taken at each learner's current (pre-step) body:

    g       = mean_i grad L_train(theta_i)      (the raw gradient; weight decay is the inner SGD's)
    Delta   = -beta * g
    phi     <- phi + Delta
    theta_i <- theta_i + Delta                  (the full shift)

then each learner takes its inner SGD step with the same gradient (weight decay on the
shifted theta_i); every K steps theta_i <- phi (soft reset, or the authors' hard reset).
The meta-gradient of first-order MAML at the current point of the trajectory needs no
validation batch: the training batch the learner is about to step on serves.

Deviation from the authors' code: none in the rule (``meta_train_fomaml_ours.py`` lines
66-95: ``loss.backward()``, ``base_param -= meta_lr * w.grad``, ``share_params``, ``w +=
base_param - _base_param``, then ``opt.step()``). The mean over tasks is taken of the
gradients (one collective over the rows, in task order) instead of over the per-rank
updated copies of phi; the two agree up to float rounding. Their other script,
``meta_train_fomaml.py --ours``, is a different variant (validation gradient, shift by
0.3 Delta); it is not reproduced.

The defaults here are tuned: ``benchmark/conf/selected/<suite>/`` records how.
"""
from __future__ import annotations

from dataclasses import dataclass

from methods import ops
from methods.base import MetaConfig, MetaMethod, register_method
from methods.search import META_GRADIENT, Resets


@dataclass
class FOMAMLppConfig(MetaConfig):
    name: str = "fomaml_pp"
    meta_lr: float = 2.1
    reset_every: int = 50
    aggregate_every: int = 1


# The distribution of each tuned key (benchmark.tune draws every trial from it).
SEARCH = {"meta_lr": META_GRADIENT, "reset_every": Resets()}


@register_method("fomaml_pp", display="FOMAML++", config=FOMAMLppConfig, search=SEARCH)
class FOMAMLpp(MetaMethod):
    update_before_step = True  # phi steps with this step's training gradients

    def update(self, step, pop):
        delta = pop.mean_grad().mul_(-self.cfg.meta_lr)
        pop.phi.add_(delta)
        ops.shift_(pop.theta, delta)
