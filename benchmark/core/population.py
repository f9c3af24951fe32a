"""phi and the population of task learners held by this process.

Each learner is a body (a copy of the model body), a head and an inner SGD optimizer.
For speed, every inner parameter of every learner lives in one flat buffer ``W``
(bodies first, as the rows of ``theta`` [T, P], then the heads), with gradients in
``G`` and momentum in ``M``. The modules' parameters are views into these buffers, so:

- the inner SGD step of all learners is four vector operations, not T optimizers;
- a meta-update, shift or reset is one operation on ``theta``;
- a collective over the bodies is one all-gather of one flat buffer.

Methods read and write ``phi`` and the bodies' rows ``theta`` (the pure maths of
``methods/ops.py``) and otherwise use only the named operations below (``mean_theta``,
``mean_rows``, ``mean_grad``, ``body_grads``, ``train_losses``, ``reset``, ``average``, ``val_batch``,
``val_losses_and_grads``, ``val_grad``, ``val_loss``, ``heads``, ``heads_sq``, ``hold_bodies``): the
layout of ``W``, ``G`` and ``M``, the learners and the collective are the population's own.

The inner step is exactly ``torch.optim.SGD`` (momentum, dampening 0, L2 weight
decay, optional Nesterov); ``tests/methods/test_update_rules.py`` checks it bit for bit.
"""
from __future__ import annotations

import contextlib
import copy
import math
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from benchmark.core.collective import Collective


def _bind(module: nn.Module, W: torch.Tensor, G: torch.Tensor, offset: int) -> int:
    """Make ``module``'s parameters (and grads) views into W (and G) from ``offset``."""
    for p in module.parameters():
        n = p.numel()
        W[offset : offset + n].copy_(p.detach().reshape(-1))
        p.data = W[offset : offset + n].view_as(p)
        p.grad = G[offset : offset + n].view_as(p)
        offset += n
    return offset


def init_head(head: nn.Linear, generator: torch.Generator) -> None:
    """nn.Linear's default init (uniform in +-1/sqrt(fan_in)), drawn from our own generator
    so a task's head does not depend on which process builds it."""
    bound = 1.0 / math.sqrt(head.in_features)
    with torch.no_grad():
        head.weight.uniform_(-bound, bound, generator=generator)
        head.bias.uniform_(-bound, bound, generator=generator)


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


def body_loss(learner: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[Callable, torch.Tensor]:
    """The cross-entropy of ``learner`` on (x, y) as a function of its flat body parameters (the head
    held at its current value), and the flat body."""
    named = list(learner.body.named_parameters())
    names = [f"body.{n}" for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    head = {f"head.{n}": p.detach() for n, p in learner.head.named_parameters()}

    def loss_fn(flat: torch.Tensor) -> torch.Tensor:
        body = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return F.cross_entropy(functional_call(learner, {**body, **head}, (x,)), y)

    return loss_fn, torch.cat([p.detach().reshape(-1) for _, p in named])


class Learner(nn.Module):
    def __init__(self, body: nn.Module, head: nn.Linear):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class Population:
    def __init__(
        self,
        body: nn.Module,
        phi0: torch.Tensor,
        num_classes: Sequence[int],
        head_generators: Sequence[torch.Generator],
        *,
        inner_lr: float,
        momentum: float,
        weight_decay: float,
        nesterov: bool = False,
        collective: Collective | None = None,
        device: torch.device | str = "cpu",
        val_batches: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ):
        """``val_batches(i, step)``: learner i's validation batch at ``step``, for methods that
        take validation gradients (None: the run has no validation split)."""
        self.inner_lr, self.momentum, self.weight_decay, self.nesterov = inner_lr, momentum, weight_decay, nesterov
        self._val_batches = val_batches
        self.step = 0  # the inner step being taken; the runner advances it
        self.train_losses = torch.zeros(len(num_classes), device=device)  # this step's, written by the runner
        self.collective = collective or Collective()
        T, P = len(num_classes), phi0.numel()
        out = body.out_features
        size = T * P + sum((out + 1) * c for c in num_classes)
        self.W = torch.zeros(size, device=device)
        self.G = torch.zeros(size, device=device)
        self.M = torch.zeros(size, device=device)
        self.theta = self.W[: T * P].view(T, P)
        self.phi = phi0.detach().clone().to(device)

        body = copy.deepcopy(body).to(device)
        self.fresh_buffers = {k: v.clone() for k, v in body.named_buffers()}  # a new body's BatchNorm state
        self.head_generators = list(head_generators)  # each task's own: heads never depend on the layout
        self.learners: list[Learner] = []
        offset = 0
        for i in range(T):
            learner = Learner(copy.deepcopy(body), nn.Linear(out, num_classes[i]).to(device))
            offset = _bind(learner.body, self.W, self.G, offset)
            self.learners.append(learner)
        for learner, gen in zip(self.learners, self.head_generators):
            init_head(learner.head, gen)
            offset = _bind(learner.head, self.W, self.G, offset)
        assert offset == size
        sizes = [sum(p.numel() for p in learner.head.parameters()) for learner in self.learners]
        self._head_owner = torch.repeat_interleave(torch.arange(T, device=device), torch.tensor(sizes, device=device))
        self.reset()

    def __len__(self) -> int:
        return len(self.learners)

    # ---- the inner step ------------------------------------------------------------
    def inner_step(self) -> None:
        """One SGD step of every learner from the gradients accumulated in G; clears G."""
        d = self.G
        if self.weight_decay:
            d.add_(self.W, alpha=self.weight_decay)
        if self.momentum:
            self.M.mul_(self.momentum).add_(d)
            d = d.add_(self.M, alpha=self.momentum) if self.nesterov else self.M
        self.W.add_(d, alpha=-self.inner_lr)
        self.G.zero_()

    # ---- what methods use ----------------------------------------------------------
    def mean_theta(self) -> torch.Tensor:
        """mean_i theta_i over every task of the run, whichever process holds it."""
        return self.collective.mean_rows(self.theta)

    def body_grads(self) -> torch.Tensor:
        """Each local learner's body gradient [T, P] of this step's training loss, at its pre-step
        point (a view of G: valid between the learners' backward and the inner step)."""
        return self.G[: self.theta.numel()].view_as(self.theta)

    def mean_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """mean_i rows_i over every task of the run, for rows [T, P] with one row per local learner."""
        return self.collective.mean_rows(rows)

    def mean_grad(self) -> torch.Tensor:
        """mean_i of the body gradients in G (this step's training gradients, before the inner
        step adds weight decay), over every task of the run."""
        return self.collective.mean_rows(self.body_grads())

    def reset(self, hard: bool = False) -> None:
        """theta_i <- phi (the authors' default, soft reset: heads, BatchNorm statistics and
        momentum carry on).

        A hard reset is the authors' ``--hard_reset`` (``meta_train_ours.py`` lines 193-204:
        a new model and a new optimizer, then the body loaded from phi): each head is
        re-drawn from its task's own generator, the bodies' BatchNorm buffers go back to
        a new body's, and all momentum is cleared."""
        self.theta.copy_(self.phi.expand_as(self.theta))
        if hard:
            for learner, gen in zip(self.learners, self.head_generators):
                init_head(learner.head, gen)
                for name, value in learner.body.named_buffers():
                    value.copy_(self.fresh_buffers[name])
            self.M.zero_()

    def average(self) -> None:
        """phi <- mean_i theta_i, every theta_i <- phi, and every body's momentum <- the mean
        momentum, in one collective (multi-task learning's joint step)."""
        body_m = self.M[: self.theta.numel()].view_as(self.theta)
        mean = self.collective.mean_rows(torch.cat([self.theta, body_m], 1))
        P = self.phi.numel()
        self.phi.copy_(mean[:P])
        body_m.copy_(mean[P:].expand_as(body_m))
        self.reset()

    def val_batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Learner i's validation batch at the current step."""
        if self._val_batches is None:
            raise RuntimeError("this run has no validation split (the method's needs_val is False)")
        return self._val_batches(i, self.step)

    def val_losses_and_grads(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each local learner's validation loss [T] and body gradient [T, P] at its current point."""
        self.G.zero_()
        losses = []
        for i, learner in enumerate(self.learners):
            x, y = self.val_batch(i)
            loss = F.cross_entropy(learner(x), y)
            loss.backward()
            losses.append(loss.detach())
        grads = self.G[: self.theta.numel()].view_as(self.theta).clone()
        self.G.zero_()
        return torch.stack(losses), grads

    def val_grad(self) -> torch.Tensor:
        """mean_i grad_theta L_val(theta_i) over every task of the run."""
        return self.collective.mean_rows(self.val_losses_and_grads()[1])

    def heads(self) -> torch.Tensor:
        """Every local head's parameters, flat (a view: heads follow the bodies in W)."""
        return self.W[self.theta.numel() :]

    @contextlib.contextmanager
    def val_loss(self, i: int) -> Iterator[tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]]:
        """Learner i's loss on its validation batch as a function of a flat body (its head held), and its
        flat body; inside, BatchNorm uses the batch's statistics and leaves its running ones alone."""
        learner = self.learners[i]
        x, y = self.val_batch(i)
        with batch_statistics_only(learner):
            yield body_loss(learner, x, y)

    def heads_sq(self, heads: torch.Tensor) -> torch.Tensor:
        """Per local learner [T], the sum of squares of its part of ``heads`` (laid out as :meth:`heads`)."""
        return torch.zeros(len(self), device=heads.device).index_add_(0, self._head_owner, heads.square())

    def hold_bodies(self, at: torch.Tensor) -> None:
        """theta_i <- ``at`` and the bodies' momentum <- 0: undoes an inner step's body move, so
        only the heads learn (ANIL's frozen body)."""
        self.theta.copy_(at.expand_as(self.theta))
        self.M[: self.theta.numel()].zero_()

    # ---- checkpoints ---------------------------------------------------------------
    def state_dict(self) -> dict:
        buffers = [{k: v.clone() for k, v in l.body.named_buffers()} for l in self.learners]
        return {"W": self.W.clone(), "M": self.M.clone(), "phi": self.phi.clone(), "buffers": buffers,
                "head_generators": [g.get_state() for g in self.head_generators]}

    def load_state_dict(self, state: dict) -> None:
        self.W.copy_(state["W"])
        self.M.copy_(state["M"])
        self.phi.copy_(state["phi"])
        for learner, bufs in zip(self.learners, state["buffers"]):
            for k, v in learner.body.named_buffers():
                v.copy_(bufs[k])
        for gen, gen_state in zip(self.head_generators, state["head_generators"]):
            gen.set_state(gen_state)
