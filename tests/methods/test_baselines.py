"""FOMAML, FOMAML++, multi-task and fine-tuning policies against hand-computed numbers,
and our FOMAML meta-gradient against learn2learn's first-order MAML."""
import copy

import pytest
import torch
import torch.nn.functional as F

from benchmark.core.population import Population
from benchmark.models import ConvNet, flat_params
from benchmark.seeding import generator
from methods.base import METHODS
from populations import assert_equals_reference, hand_population, population_phi

MOVES = torch.tensor([[1.0, 0.0], [0.0, 2.0]])


def build(name, **cfg):
    entry = METHODS.get(name)
    return entry.build(entry.config(**cfg))


def test_fomaml_by_hand():
    """Validation gradients are stubbed: the policy must apply phi <- phi - beta * g every
    aggregate_every steps, never shift, and reset at K."""
    shift = False
    method = build("fomaml", meta_lr=0.5, reset_every=2, aggregate_every=1)
    pop = hand_population()
    grads = iter([torch.tensor([2.0, -2.0]), torch.tensor([0.0, 4.0]), torch.tensor([1.0, 1.0])])
    pop.val_grad = lambda: next(grads)
    method.setup(pop)
    trace = []
    for step in (1, 2, 3):
        pop.theta += MOVES
        method.after_step(step, pop)
        trace.append((pop.phi.tolist(), pop.theta.tolist()))
    # step 1: phi = 0 - 0.5 * (2, -2) = (-1, 1); Delta = (-1, 1)
    t1 = [[0.0, 1.0], [-1.0, 3.0]] if shift else [[1.0, 0.0], [0.0, 2.0]]
    assert trace[0] == ([-1.0, 1.0], t1)
    # step 2: phi = (-1, 1) - 0.5 * (0, 4) = (-1, -1); then reset to phi
    assert trace[1] == ([-1.0, -1.0], [[-1.0, -1.0], [-1.0, -1.0]])
    # step 3: thetas (0, -1), (-1, 1); phi = (-1, -1) - 0.5 * (1, 1) = (-1.5, -1.5); Delta = (-0.5, -0.5)
    t3 = [[-0.5, -1.5], [-1.5, 0.5]] if shift else [[0.0, -1.0], [-1.0, 1.0]]
    assert trace[2] == ([-1.5, -1.5], t3)


def test_fomaml_pp_by_hand():
    """meta_train_fomaml_ours.py: before the inner step, phi -= beta * mean_i g_i with the
    training gradients at the pre-step bodies, every body shifts by the same Delta, then
    each steps with its own g_i (lr 0.1, momentum 0.9, no weight decay here); reset at K."""
    method = build("fomaml_pp", meta_lr=0.5, reset_every=2, aggregate_every=1)
    pop = hand_population()
    method.setup(pop)
    body_grads = pop.G[: pop.theta.numel()].view_as(pop.theta)
    trace = []
    for step, g in ((1, [[1.0, 0.0], [0.0, 2.0]]), (2, [[2.0, 2.0], [0.0, 0.0]])):
        body_grads.copy_(torch.tensor(g))  # stands in for the learners' backward
        method.before_step(step, pop)
        trace.append((pop.phi.tolist(), pop.theta.tolist()))
        pop.inner_step()
        method.after_step(step, pop)
        trace.append((pop.phi.tolist(), pop.theta.tolist()))
    # step 1: mean g (0.5, 1); Delta = -(0.25, 0.5), applied to phi and both bodies
    assert trace[0] == ([-0.25, -0.5], [[-0.25, -0.5], [-0.25, -0.5]])
    # ... then the inner step: theta_i -= 0.1 g_i (momentum buffers start at g_i)
    torch.testing.assert_close(torch.tensor(trace[1][1]), torch.tensor([[-0.35, -0.5], [-0.25, -0.7]]))
    # step 2: mean g (1, 1); Delta = -(0.5, 0.5); phi (-0.75, -1); the bodies shift by Delta
    torch.testing.assert_close(torch.tensor(trace[2][0]), torch.tensor([-0.75, -1.0]))
    torch.testing.assert_close(torch.tensor(trace[2][1]), torch.tensor([[-0.85, -1.0], [-0.75, -1.2]]))
    # ... the inner step, then the reset at K = 2: every body is phi
    assert trace[3] == (trace[2][0], [trace[2][0]] * 2)


def authors_fomaml_pp_phi(steps: int, beta: float, K: int) -> torch.Tensor:
    """A line-by-line port of meta_train_fomaml_ours.py's train_step (lines 66-95) and its
    loop (186-203), one model and one torch.optim.SGD per task, share_params as a mean."""
    from torch import nn

    from benchmark.core.data import TaskStream
    from benchmark.core.population import Learner, init_head
    from tasks.registry import TASKS
    from tasks.toy import make_toy

    torch.manual_seed(0)
    body = ConvNet(1, 4)
    base_param = {n: w.clone().detach() for n, w in body.named_parameters()}
    models, opts, streams = [], [], []
    for name in ["toy_a", "toy_b"]:
        spec = TASKS.get(name)
        head = nn.Linear(body.out_features, spec.num_classes)
        init_head(head, generator(0, name, "head"))
        models.append(Learner(copy.deepcopy(body), head))
        opts.append(torch.optim.SGD(models[-1].parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4))
        d = make_toy(name, spec.num_classes)
        streams.append(TaskStream(d.train_x, d.train_y, spec, 8, (0, name, "train"), "cpu"))
    for i in range(1, steps + 1):
        for model, opt, stream in zip(models, opts, streams):
            x, y = stream.batch(i)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
        old = {n: w.clone() for n, w in base_param.items()}
        updated = [{n: base_param[n] - beta * w.grad for n, w in m.body.named_parameters()} for m in models]
        base_param = {n: sum(u[n] for u in updated) / len(updated) for n in base_param}  # share_params
        for model, opt in zip(models, opts):
            with torch.no_grad():
                for n, w in model.body.named_parameters():
                    w += base_param[n] - old[n]
            opt.step()
        if i % K == 0:
            for model in models:
                model.body.load_state_dict(base_param, strict=False)
    return torch.cat([w.reshape(-1) for w in base_param.values()])


def test_fomaml_pp_matches_a_port_of_the_authors_script():
    ours = population_phi("fomaml_pp", 7, meta_lr=0.3, reset_every=3, aggregate_every=1)
    ref = authors_fomaml_pp_phi(7, beta=0.3, K=3)
    assert_equals_reference(ours, ref, moved_atol=1e-3)


def test_fomaml_adam_meta_optimizer_by_hand():
    """Adam's first step is lr * sign(g) (bias-corrected m / sqrt(v))."""
    method = build("fomaml", meta_lr=0.1, reset_every=4, aggregate_every=1, meta_optimizer="adam")
    pop = hand_population()
    pop.val_grad = lambda: torch.tensor([3.0, -0.5])
    method.setup(pop)
    method.after_step(1, pop)
    torch.testing.assert_close(pop.phi, torch.tensor([-0.1, 0.1]), atol=1e-6, rtol=0)


def test_multitask_by_hand():
    """Bodies and their momentum are averaged every step: one SGD step on the mean gradient."""
    method = build("multitask")
    pop = hand_population()
    method.setup(pop)
    pop.M[:4] = torch.tensor([1.0, 2.0, 3.0, 6.0])  # body momentum rows (1, 2) and (3, 6)
    pop.theta += MOVES
    method.after_step(1, pop)
    assert pop.phi.tolist() == [0.5, 1.0]
    assert pop.theta.tolist() == [[0.5, 1.0], [0.5, 1.0]]
    assert pop.M[:4].tolist() == [2.0, 4.0, 2.0, 4.0]


def test_multitask_step_is_sgd_on_mean_gradient():
    """Two learners with different batches, averaged, equal one SGD step of a single body on
    the mean of their body gradients (momentum, weight decay, two steps)."""
    torch.manual_seed(0)
    body = ConvNet(1, 4)
    pop = Population(body, flat_params(body), [3, 3], [generator("h", i) for i in range(2)], inner_lr=0.1,
                     momentum=0.9, weight_decay=1e-3)
    ref_body = copy.deepcopy(body)
    heads = [copy.deepcopy(l.head) for l in pop.learners]
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3) for m in [ref_body, *heads]]
    method = build("multitask")
    method.setup(pop)
    batches = [(torch.randn(6, 1, 12, 12), torch.randint(0, 3, (6,))) for _ in range(4)]
    for step in (1, 2):
        for o in opts:
            o.zero_grad()
        # reference: the body follows the mean of the task losses, each head its own loss
        total = 0
        for i, learner in enumerate(pop.learners):
            x, y = batches[2 * (step - 1) + i]
            F.cross_entropy(learner(x), y).backward()
            total = total + F.cross_entropy(heads[i](ref_body(x)), y) / 2
        total.backward()
        for h in heads:
            for p in h.parameters():
                p.grad *= 2
        for o in opts:
            o.step()
        pop.inner_step()
        method.after_step(step, pop)
    torch.testing.assert_close(pop.phi, flat_params(ref_body), atol=1e-6, rtol=0)


def test_finetune_takes_the_suites_source_and_the_full_budget():
    from tasks.registry import SuiteConfig

    suite = SuiteConfig(name="toy", sources=["toy_a", "toy_b"], targets=["toy_e"], finetune_source="toy_c")
    method = build("finetune")
    assert method.sources(suite) == ["toy_c"]
    assert method.steps(100, 8) == 800
    named = build("finetune", source="toy_a", steps=7)
    assert named.sources(suite) == ["toy_a"] and named.steps(100, 8) == 7


def test_finetune_source_of_each_suite():
    """The paper's baseline pre-trains on all of Tiny ImageNet (200 classes), not its largest source."""
    from helpers import make_config

    assert make_config("suite=paper", "method=finetune").suite.finetune_source == "tiny_imagenet"
    assert make_config("suite=glyphs", "method=finetune").suite.finetune_source == "glyphs_math"
    with pytest.raises(ValueError, match="method.source.*also a target"):
        make_config("suite=toy", "method=finetune", "method.source=toy_e")


def test_finetune_phi_is_the_pretrained_body_at_every_step():
    method = build("finetune")
    pop = hand_population()
    method.setup(pop)
    pop.theta += MOVES
    method.after_step(1, pop)
    assert pop.phi.tolist() == [0.5, 1.0]  # the mean over learners: with one source, its body
    pop.theta += MOVES
    method.after_step(2, pop)
    assert pop.phi.tolist() == [1.0, 2.0]


def test_fomaml_gradient_matches_learn2learn_first_order_maml():
    """One inner SGD step on a support batch, then the query-batch gradient: our
    population's val_grad must equal learn2learn's MAML(first_order=True)
    clone -> adapt -> query-loss backward gradient on the body."""
    import learn2learn as l2l  # installed by scripts/install_learn2learn.sh; a missing install fails here
    torch.manual_seed(0)
    body = ConvNet(1, 4)
    support = (torch.randn(10, 1, 12, 12), torch.randint(0, 5, (10,)))
    query = (torch.randn(10, 1, 12, 12), torch.randint(0, 5, (10,)))
    pop = Population(body, flat_params(body), [5], [generator("h")], inner_lr=0.1, momentum=0.0,
                     weight_decay=0.0, val_batches=lambda i, step: query)

    model = copy.deepcopy(pop.learners[0])  # same body and head values, ordinary tensors
    for p in model.parameters():
        p.data = p.data.clone()
        p.grad = None
    maml = l2l.algorithms.MAML(model, lr=0.1, first_order=True)
    learner = maml.clone()
    learner.adapt(F.cross_entropy(learner(support[0]), support[1]))
    F.cross_entropy(learner(query[0]), query[1]).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.body.parameters()])

    F.cross_entropy(pop.learners[0](support[0]), support[1]).backward()
    pop.inner_step()
    ours = pop.val_grad()
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
