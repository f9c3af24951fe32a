"""Shared populations for the update-rule tests (a helper module, not a test module).

``hand_population()`` is the hand case of ``test_update_rules.py``: 2 tasks, a body of
exactly 2 parameters (``Tiny``), phi_0 = 0. ``population_phi(name, steps, **cfg)`` runs a
method's policy through a real 2-task toy population and returns its final phi.

Imported as ``from populations import ...``: pytest's default (prepend) import mode puts
``tests/methods/`` on sys.path for the test files here. The name is plural so it never
shadows ``benchmark.core.population``.
"""
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core.data import TaskStream
from benchmark.core.population import Population
from benchmark.models import ConvNet, flat_params
from benchmark.seeding import generator
from methods.base import METHODS
from tasks.registry import TASKS
from tasks.toy import make_toy


class Tiny(nn.Linear):
    """A body with exactly two parameters."""

    def __init__(self):
        super().__init__(1, 2, bias=False)
        self.out_features = 2


def hand_population() -> Population:
    gens = [generator("t", i) for i in range(2)]
    return Population(Tiny(), torch.zeros(2), [2, 2], gens, inner_lr=0.1, momentum=0.9, weight_decay=0.0)


def population_phi(name: str, steps: int, **cfg) -> torch.Tensor:
    torch.manual_seed(0)
    body = ConvNet(1, 4)
    names = ["toy_a", "toy_b"]
    specs = [TASKS.get(n) for n in names]
    pop = Population(body, flat_params(body), [s.num_classes for s in specs],
                     [generator(0, n, "head") for n in names], inner_lr=0.05, momentum=0.9, weight_decay=5e-4)
    streams = []
    for s in specs:
        d = make_toy(s.name, s.num_classes)
        streams.append(TaskStream(d.train_x, d.train_y, s, 8, (0, s.name, "train"), "cpu"))
    entry = METHODS.get(name)
    method = entry.build(entry.config(**cfg))
    method.setup(pop)
    for step in range(1, steps + 1):
        for i, (learner, s) in enumerate(zip(pop.learners, streams)):
            x, y = s.batch(step)
            loss = F.cross_entropy(learner(x), y)
            loss.backward()
            pop.train_losses[i] = loss.detach()  # as the runner does
        method.before_step(step, pop)
        pop.inner_step()
        method.after_step(step, pop)
    return pop.phi


def assert_equals_reference(ours: torch.Tensor, ref: torch.Tensor, moved_atol: float = 1e-8) -> None:
    """``ours`` equals an independent reference phi to 1e-6, and the reference has moved from
    population_phi's phi_0 by more than ``moved_atol`` (else their equality would prove nothing)."""
    torch.manual_seed(0)
    assert not torch.allclose(ref, flat_params(ConvNet(1, 4)), atol=moved_atol), "phi must have moved"
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
