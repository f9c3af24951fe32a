"""CTS and Reptile policies against hand-computed numbers, and the whole inner loop
against an independent reference built from torch.optim.SGD and separate models.

The hand case: 2 tasks, 2 body parameters, phi_0 = 0, beta = 0.5, K = 2. Instead of
gradients, each "inner step" moves task 0 by (1, 0) and task 1 by (0, 2), so every
number below can be checked on paper (``hand_population`` in ``populations.py``, shared
with the other policy tests, as is ``population_phi``).
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core.data import TaskStream
from benchmark.core.population import Learner, Population, init_head
from benchmark.models import ConvNet, flat_params
from benchmark.seeding import generator
from methods.base import METHODS
from populations import assert_equals_reference, hand_population, population_phi
from tasks.registry import TASKS
from tasks.toy import make_toy


def run_policy(name: str, **cfg) -> list[tuple[list, list]]:
    entry = METHODS.get(name)
    method = entry.build(entry.config(**cfg))
    pop = hand_population()
    method.setup(pop)
    moves = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    trace = []
    for step in (1, 2, 3):
        pop.theta += moves  # stands in for one inner step of each task
        method.after_step(step, pop)
        trace.append((pop.phi.tolist(), pop.theta.tolist()))
    return trace


def test_cts_by_hand():
    trace = run_policy("ours", meta_lr=0.5, reset_every=2, aggregate_every=1)
    # step 1: mean (0.5, 1); Delta = 0.5 * (mean - phi) = (0.25, 0.5); phi and both thetas shift by it
    assert trace[0] == ([0.25, 0.5], [[1.25, 0.5], [0.25, 2.5]])
    # step 2: thetas (2.25, 0.5), (0.25, 4.5); mean (1.25, 2.5); Delta = (0.5, 1); then reset to phi
    assert trace[1] == ([0.75, 1.5], [[0.75, 1.5], [0.75, 1.5]])
    # step 3: thetas (1.75, 1.5), (0.75, 3.5); mean (1.25, 2.5); Delta = (0.25, 0.5)
    assert trace[2] == ([1.0, 2.0], [[2.0, 2.0], [1.0, 4.0]])


def test_reptile_by_hand():
    trace = run_policy("reptile", meta_lr=0.5, reset_every=2, aggregate_every=2)
    assert trace[0] == ([0.0, 0.0], [[1.0, 0.0], [0.0, 2.0]])  # no meta-update before K
    # step 2: thetas (2, 0), (0, 4); mean (1, 2); phi = 0 + 0.5 * (1, 2); reset to phi
    assert trace[1] == ([0.5, 1.0], [[0.5, 1.0], [0.5, 1.0]])
    assert trace[2] == ([0.5, 1.0], [[1.5, 1.0], [0.5, 3.0]])  # no shift in Reptile


@pytest.mark.parametrize("hard", [False, True])
def test_reset_keeps_inner_optimizer_state_unless_hard(hard):
    pop = hand_population()
    pop.G.fill_(1.0)
    pop.inner_step()
    pop.reset(hard=hard)
    assert torch.equal(pop.theta, torch.zeros(2, 2))
    assert (pop.M.abs().sum() == 0) == hard


class TinyBN(nn.Sequential):
    """Two body parameters behind a BatchNorm, so a reset has buffers to restore."""

    def __init__(self):
        super().__init__(nn.BatchNorm1d(1), nn.Linear(1, 2, bias=False))
        self.out_features = 2


def test_hard_reset_is_the_authors_new_model_and_optimizer():
    """meta_train_ours.py 193-204: get_model (new head, new BatchNorm state), get_optimizer
    (no momentum), then the body loaded from phi. The soft reset only moves the body."""
    torch.manual_seed(0)
    body = TinyBN()
    fresh = {k: v.clone() for k, v in body.state_dict().items() if "running" in k or "num_batches" in k}
    phi = flat_params(body)
    heads_drawn = []
    for i in range(2):  # what each task's generator gives for its first head, then its second
        g, head = generator("t", i), nn.Linear(2, 3)
        init_head(head, g)
        first = torch.cat([head.weight.flatten(), head.bias]).clone()
        init_head(head, g)
        heads_drawn.append((first, torch.cat([head.weight.flatten(), head.bias]).clone()))
    pop = Population(body, phi, [3, 3], [generator("t", i) for i in range(2)], inner_lr=0.1, momentum=0.9,
                     weight_decay=0.0)
    x = torch.randn(8, 1) * 3 + 2
    for learner in pop.learners:  # one step moves everything a reset may restore
        F.cross_entropy(learner(x), torch.arange(8) % 3).backward()
    pop.inner_step()
    heads = lambda: [torch.cat([l.head.weight.flatten(), l.head.bias]) for l in pop.learners]  # noqa: E731
    assert all(torch.equal(h, first) is False for h, (first, _) in zip(heads(), heads_drawn))  # heads moved
    moved_heads = [h.clone() for h in heads()]

    pop.reset(hard=False)
    assert torch.equal(pop.theta, phi.expand_as(pop.theta))
    assert all(torch.equal(a, b) for a, b in zip(heads(), moved_heads))
    assert pop.M.abs().sum() > 0
    assert pop.learners[0].body[0].num_batches_tracked == 1

    pop.reset(hard=True)
    assert torch.equal(pop.theta, phi.expand_as(pop.theta))
    assert all(torch.equal(h, second) for h, (_, second) in zip(heads(), heads_drawn))  # re-drawn, per task
    assert pop.M.abs().sum() == 0
    for learner in pop.learners:
        for k, v in fresh.items():
            assert torch.equal(learner.body.state_dict()[k], v), k


def test_inner_step_is_torch_sgd_bit_for_bit():
    torch.manual_seed(0)
    body = ConvNet(1, 4)
    pop = Population(body, flat_params(body), [3], [generator("h")], inner_lr=0.05, momentum=0.9,
                     weight_decay=5e-4, nesterov=True)
    ref = copy.deepcopy(pop.learners[0])
    opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 3, (8,))
    for _ in range(3):
        F.cross_entropy(pop.learners[0](x), y).backward()
        pop.inner_step()
        opt.zero_grad()
        F.cross_entropy(ref(x), y).backward()
        opt.step()
    for a, b in zip(pop.learners[0].parameters(), ref.parameters()):
        assert torch.equal(a, b)


def reference_phi(shift: bool, steps: int, beta: float, K: int, every: int) -> torch.Tensor:
    """Independent few-line reference: separate models, torch.optim.SGD, plain vectors."""
    torch.manual_seed(0)
    body = ConvNet(1, 4)
    phi = flat_params(body)
    names = ["toy_a", "toy_b"]
    models, opts, streams = [], [], []
    for n in names:
        head = nn.Linear(body.out_features, TASKS.get(n).num_classes)
        init_head(head, generator(0, n, "head"))
        m = Learner(copy.deepcopy(body), head)
        models.append(m)
        opts.append(torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4))
        d = make_toy(n, TASKS.get(n).num_classes)
        streams.append(TaskStream(d.train_x, d.train_y, TASKS.get(n), 8, (0, n, "train"), "cpu"))
    for step in range(1, steps + 1):
        for m, opt, s in zip(models, opts, streams):
            x, y = s.batch(step)
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        if step % every == 0:
            thetas = [nn.utils.parameters_to_vector(m.body.parameters()).detach() for m in models]
            delta = beta * (torch.stack(thetas).mean(0) - phi)
            phi = phi + delta
            if shift:
                for m, t in zip(models, thetas):
                    nn.utils.vector_to_parameters(t + delta, m.body.parameters())
        if step % K == 0:
            for m in models:
                nn.utils.vector_to_parameters(phi.clone(), m.body.parameters())
    return phi


@pytest.mark.parametrize("name,shift,every", [("ours", True, 1), ("ours", True, 2), ("reptile", False, 3)])
def test_population_matches_independent_reference(name, shift, every):
    ours = population_phi(name, 7, meta_lr=0.3, reset_every=3, aggregate_every=every)
    ref = reference_phi(shift, 7, beta=0.3, K=3, every=every)
    assert_equals_reference(ours, ref)
