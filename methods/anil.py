"""ANIL, Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals, ICLR 2020, "Rapid Learning
or Feature Reuse?", Sec. 4), first-order, in the many-shot setting of the CTS authors'
``meta_train_ANIL.py``.

The inner loop adapts only the head; the body is frozen. Every ``aggregate_every`` steps
(1, as in the authors' script) the body's meta-gradient is the validation gradient at
the learners' (frozen body, adapted head), averaged over every task:

    g   = mean_i grad_body L_val(theta_i, head_i)
    phi <- MetaOpt(phi, g)          (SGD by default, as in their script)

and every K steps the bodies are reset to phi. Heads are never reset.

How the frozen body is implemented: the runner's inner step moves every parameter, so
after each step the policy puts every body row back where it is frozen and zeroes the
body's momentum. For SGD this is exact: the head's step depends on the body only
through the forward pass, which saw the frozen body, and the body carries no optimizer
state into the next step. (The runner still computes the body gradients; that is wasted
work, not a change in the result.) The authors' script gets the same by giving its inner
optimizer only the head.

``shift`` (the CTS shift, the authors' ``--ours``; on by default here, off in theirs): the bodies
follow phi at every meta-update. With a frozen body every theta_i equals the body it was
frozen at, so the shift theta_i <- theta_i + Delta simply moves the frozen bodies to the
new phi. Without it they stay at the phi of the last reset until the next one, and the
meta-gradient is taken there, as FOMAML's is at the learners' points. With
``aggregate_every`` = K the two coincide.

Deviations from the paper, shared with the authors' script: the head is per task, neither
meta-learned nor reset (ANIL re-initializes a meta-learned head every episode), and the
meta-gradient is first-order (no backpropagation through the head's adaptation).

Deviation from the authors' code, in this policy (the runner's differences, shared by every method,
are not repeated here):
- Their body gradients are never zeroed: ``opt.zero_grad()`` (lines 81 and 92) clears only the
  head, the one parameter group of their optimizer (line 176), and the model lives across soft
  resets (their default), so the body ``.grad`` that line 104 applies is the sum of every
  training-batch (line 82) and validation-batch (line 99) body gradient since the start. Here the
  meta-gradient is the current validation gradient alone.
- Their hard reset builds the new optimizer over every parameter (``model.parameters()``, line 216),
  so from the first hard reset on their inner loop trains the body too. Here the body stays frozen.
- The split. Theirs: ``train_val_split=0.1`` (lines 145, 228): int(0.1 n) images of each training
  set train the heads and the other 90% validate, an unseeded ``random_split`` (``dataloader.py``
  lines 49-50) redrawn, with new shuffled loaders, at every reset (lines 223-231). Here a split fixed
  by (seed, task): 75% trains the heads, 25% validates (``val_fraction``), as in ``fomaml``.
- ``meta_optimizer: adam`` has no counterpart (their meta-step is the plain SGD of line 104).
- The shift is on by default (theirs off: ``--ours`` False, line 29). Theirs beta 1e-2 (line 22), K 1000
  (line 24), a meta-update every step (line 23); tuned here (``benchmark/conf/selected/<suite>/``).

What matches the authors' code, line by line: ``docs/fidelity.md``, section ANIL.
"""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import GradConfig, GradMethod, register_method
from methods.search import META_GRADIENT, Resets


@dataclass
class ANILConfig(GradConfig):
    name: str = "anil"
    meta_lr: float = 2.3
    reset_every: int = 200
    aggregate_every: int = 1
    shift: bool = True  # bodies follow phi at every meta-update (the CTS shift)


# The distribution of each tuned key (benchmark.tune draws every trial from it).
SEARCH = {"meta_lr": META_GRADIENT, "reset_every": Resets()}


@register_method("anil", display="ANIL", config=ANILConfig, search=SEARCH)
class ANIL(GradMethod):
    def setup(self, pop):
        super().setup(pop)
        # Where the bodies are frozen: phi itself with the shift, else phi at the last reset.
        self.frozen = pop.phi if self.cfg.shift else pop.phi.clone()

    def follow(self, step, pop):
        pop.hold_bodies(self.frozen)  # undo the inner step's body move

    def meta_grad(self, step, pop):
        return pop.val_grad()

    def update(self, step, pop):
        super().update(step, pop)
        if self.cfg.shift:
            pop.theta.copy_(pop.phi.expand_as(pop.theta))

    def after_reset(self, pop):
        if not self.cfg.shift:
            self.frozen.copy_(pop.phi)

    def state_dict(self):
        return {**super().state_dict(), "frozen": None if self.cfg.shift else self.frozen.clone()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if not self.cfg.shift:
            self.frozen.copy_(state["frozen"])
