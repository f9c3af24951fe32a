"""Leap, iMAML and ANIL: their update rules against hand or closed-form numbers, ANIL's
frozen body through a real population, and each method end to end on the toy suite."""
import pytest
import torch
import torch.nn.functional as F

from benchmark.core.data import TaskStream, split_train_val
from benchmark.core.population import Population
from benchmark.core.train import initial_body
from benchmark.models import ConvNet, flat_params
from benchmark.models import build_body
from benchmark.runtime.execute import execute
from benchmark.seeding import generator
from helpers import make_config
from benchmark.core.population import batch_statistics_only, body_loss
from methods.base import METHODS
from methods.imaml import implicit_grad
from methods.leap import leap_increment
from populations import assert_equals_reference, hand_population, population_phi
from tasks.registry import TASKS
from tasks.toy import make_toy

NEW = ["leap", "imaml", "anil"]


def build(name, **cfg):
    entry = METHODS.get(name)
    return entry.build(entry.config(**cfg))


# ---- Leap ---------------------------------------------------------------------------
# One task, two parameters, by hand:
#   theta^0 = (0, 0), l0 = 3,  grad l(theta^0) = (-1, -2)
#   theta^1 = (4, 0), l1 = 0,  grad l(theta^1) = (0, 1)
#   theta^2 = (4, 5), l2 = 12
# Segment 0: d_theta = (4, 0), d_loss = -3, length sqrt(16 + 9) = 5;
#   increment = -((4, 0) - 3 * (-1, -2)) / 5 = -(7, 6) / 5 = (-1.4, -1.2).
# Segment 1: d_theta = (0, 5), d_loss = +12, stabilized to -12, length sqrt(25 + 144) = 13;
#   increment = -((0, 5) - 12 * (0, 1)) / 13 = (0, 7/13); unstabilized -((0, 5) + 12 (0, 1)) / 13 = (0, -17/13).
# Without the norm: -(7, 6) and -((0, 5) - 12 (0, 1)) = (0, 7). Without the loss term,
# normed: -(4, 0)/4 = (-1, 0) and -(0, 5)/5 = (0, -1). A head step of squared length 11
# lengthens segment 0 to sqrt(16 + 9 + 11) = 6: -(7, 6) / 6.
THETA = torch.tensor([[0.0, 0.0], [4.0, 0.0], [4.0, 5.0]])
LOSS = torch.tensor([3.0, 0.0, 12.0])
GRAD = torch.tensor([[-1.0, -2.0], [0.0, 1.0], [0.0, 0.0]])


def segment(k, **kw):
    return leap_increment(THETA[k : k + 1], THETA[k + 1 : k + 2], GRAD[k : k + 1], LOSS[k : k + 1],
                          LOSS[k + 1 : k + 2], **kw)[0]


def close(a, b):
    torch.testing.assert_close(a, torch.tensor(b), atol=1e-6, rtol=0)


def test_leap_increment_by_hand():
    close(segment(0), [-1.4, -1.2])
    close(segment(1), [0.0, 7 / 13])
    close(segment(1, stabilizer=False), [0.0, -17 / 13])
    close(segment(0, norm=False), [-7.0, -6.0])
    close(segment(0, other_sq=torch.tensor([11.0])), [-7 / 6, -1.0])
    close(segment(1, norm=False), [0.0, 7.0])
    close(leap_increment(THETA[:2], THETA[1:]), [[-1.0, 0.0], [0.0, -1.0]])  # no loss term: -d_theta / ||d_theta||
    zero = leap_increment(THETA[:1], THETA[:1], GRAD[:1], LOSS[:1], LOSS[:1])  # a zero-length segment
    assert torch.equal(zero, torch.zeros(1, 2))


def run_leap_by_hand(method, steps):
    """Drive the policy as the runner does: this step's losses and body gradients are written
    before ``before_step``, then the bodies move (instead of an inner step) and ``after_step``."""
    pop = hand_population()
    method.setup(pop)
    for k, (losses, grads, moves) in enumerate(steps, start=1):
        pop.train_losses.copy_(torch.tensor(losses))
        pop.body_grads().copy_(torch.tensor(grads))
        method.before_step(k, pop)
        pop.theta += torch.tensor(moves)
        method.after_step(k, pop)
    return pop


def test_leap_policy_by_hand():
    """The authors' pairing, two tasks, K = 3, beta = 0.5. Task 0: (L_k, g_k) taken before step k,
    theta^k after it: (3, (-1, -2)), theta^1 = (4, 0); (0, (0, 1)), theta^2 = (4, 5); (12, (0, 0)),
    theta^3 = (5, 5). Step 1 only records. Step 2: d_theta (0, 5), d_loss 0 - 3 = -3, g_1:
    -((0, 5) - 3 (-1, -2)) / sqrt(25 + 9) = -(3, 11) / sqrt(34). Step 3: d_theta (1, 0), d_loss
    +12, stabilized -12, g_2: -((1, 0) - 12 (0, 1)) / sqrt(1 + 144) = (-1, 12) / sqrt(145).
    Task 1, flat loss 1: moves (0, -3), (0, 4), none: step 2 gives -(0, 4) / 4 = (0, -1), step
    3 a zero-length segment, nothing. phi = -0.5 * mean over tasks; then the reset."""
    method = build("leap", meta_lr=0.5, reset_every=3, aggregate_every=3)
    assert not method.needs_val
    pop = run_leap_by_hand(method, [
        ([3.0, 1.0], [[-1.0, -2.0], [5.0, 5.0]], [[4.0, 0.0], [0.0, -3.0]]),
        ([0.0, 1.0], [[0.0, 1.0], [5.0, 5.0]], [[0.0, 5.0], [0.0, 4.0]]),
        ([12.0, 1.0], [[0.0, 0.0], [5.0, 5.0]], [[1.0, 0.0], [0.0, 0.0]]),
    ])
    task0 = -torch.tensor([3.0, 11.0]) / 34 ** 0.5 + torch.tensor([-1.0, 12.0]) / 145 ** 0.5
    expected = -0.5 * (task0 + torch.tensor([0.0, -1.0])) / 2
    torch.testing.assert_close(pop.phi, expected, atol=1e-6, rtol=0)
    assert torch.equal(pop.theta, pop.phi.expand(2, 2))
    assert torch.equal(method.path_grad, torch.zeros(2, 2)) and method.prev is None


def test_leap_without_loss_term_is_the_path_length():
    """K = 2: step 1 records, step 2 adds -d_theta / ||d_theta||: task 0 -(0, 5)/5 = (0, -1),
    task 1 nothing (it stands still); mean (0, -0.5); phi = -0.5 * mean = (0, 0.25)."""
    method = build("leap", meta_lr=0.5, reset_every=2, aggregate_every=2, loss_term=False)
    pop = run_leap_by_hand(method, [([9.0, 9.0], [[9.0, 9.0], [9.0, 9.0]], [[4.0, 0.0], [0.0, -3.0]]),
                                    ([9.0, 9.0], [[9.0, 9.0], [9.0, 9.0]], [[0.0, 5.0], [0.0, 0.0]])])
    close(pop.phi, [0.0, 0.25])


def authors_leap_phi(steps: int, beta: float, K: int) -> torch.Tensor:
    """A port of meta_train_leap.py's train_step (lines 55-72) and loop (174-194) with the
    authors' Updater (leap.py lines 62-133) restated: one model and torch.optim.SGD per task."""
    import copy

    from torch import nn

    torch.manual_seed(0)
    body = ConvNet(1, 4)
    base = [p.detach().clone() for p in body.parameters()]
    meta_grad = [torch.zeros_like(p) for p in base]
    models, opts, streams, prev = [], [], [], [None, None]
    for name in ["toy_a", "toy_b"]:
        spec = TASKS.get(name)
        head = nn.Linear(body.out_features, spec.num_classes)
        from benchmark.core.population import init_head

        init_head(head, generator(0, name, "head"))
        models.append(torch.nn.Sequential(copy.deepcopy(body), head))
        opts.append(torch.optim.SGD(models[-1].parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4))
        d = make_toy(name, spec.num_classes)
        streams.append(TaskStream(d.train_x, d.train_y, spec, 8, (0, name, "train"), "cpu"))
    for i in range(1, steps + 1):
        for t, (model, opt, stream) in enumerate(zip(models, opts, streams)):
            x, y = stream.batch(i)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            curr = ([p.detach().clone() for p in model.parameters()], [p.grad.clone() for p in model.parameters()],
                    loss.detach().clone())
            if prev[t] is not None:  # Updater.increment_grad
                (pp, pg, pl), (cp, _, cl) = prev[t], curr
                d_loss = cl - pl
                if d_loss > 0:
                    d_loss = -d_loss
                norm = (d_loss * d_loss + sum(((c - p) ** 2).sum() for c, p in zip(cp, pp))).sqrt()
                n_body = len(base)
                for j in range(n_body):
                    meta_grad[j] += (pp[j] - cp[j] - d_loss * pg[j]) / norm / 2  # share_grads: the mean
            prev[t] = curr
        if i % K == 0:
            for b, g in zip(base, meta_grad):
                b -= beta * g
                g.zero_()
            for model in models:
                with torch.no_grad():
                    for p, b in zip(model[0].parameters(), base):
                        p.copy_(b)
            prev = [None, None]
    return torch.cat([b.reshape(-1) for b in base])


def test_leap_matches_a_port_of_the_authors_script():
    ours = population_phi("leap", 9, meta_lr=0.3, reset_every=4, aggregate_every=4)
    ref = authors_leap_phi(9, beta=0.3, K=4)
    assert_equals_reference(ours, ref, moved_atol=1e-4)


# ---- iMAML --------------------------------------------------------------------------
def test_imaml_implicit_gradient_on_a_quadratic_is_the_closed_form():
    """loss = 1/2 (theta - c)^T A (theta - c) has Hessian A everywhere, so CG + HVP must return
    (I + A / lambda)^{-1} g, and ((1 + d) I + A / lambda)^{-1} g with damping d."""
    torch.manual_seed(0)
    n, lam = 6, 0.5
    Q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))
    A = Q @ torch.diag(torch.linspace(0.2, 5.0, n, dtype=torch.float64)) @ Q.T
    c, theta, g = torch.randn(3, n, dtype=torch.float64)

    def loss(t):
        return 0.5 * (t - c) @ A @ (t - c)

    eye = torch.eye(n, dtype=torch.float64)
    for damping in (0.0, 1.0):
        x = implicit_grad(loss, theta, g, reg_lambda=lam, cg_steps=10, cg_damping=damping)
        expected = torch.linalg.solve((1 + damping) * eye + A / lam, g)
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(x, g / 2, atol=1e-2), "the Hessian must matter"


class SmallBody(torch.nn.Sequential):
    """Conv, BatchNorm, ReLU, pool: 33 body parameters, so a dense Hessian is cheap."""

    def __init__(self):
        super().__init__(torch.nn.Conv2d(1, 3, 3, stride=2, bias=False), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                         torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
        self.out_features = 12


def test_imaml_meta_grad_is_the_dense_solve_on_a_learner():
    """Through the method on a real population: (I + H_body / lambda)^{-1} g_body, with H and g
    on the learner's validation batch and the head held fixed, BatchNorm statistics untouched."""
    torch.manual_seed(0)
    body = SmallBody()
    x, y = torch.randn(16, 1, 8, 8), torch.arange(16) % 3
    pop = Population(body, flat_params(body), [3], [generator("h")], inner_lr=0.1, momentum=0.9, weight_decay=0.01,
                     val_batches=lambda i, step: (x, y))
    lam = 2.0  # I + H / lambda is positive definite for this net, so CG converges to the solve
    method = build("imaml", reg_lambda=lam, cg_steps=100, aggregate_every=100)
    learner = pop.learners[0]
    with batch_statistics_only(learner):
        loss_fn, theta = body_loss(learner, x, y)
        H = torch.autograd.functional.hessian(loss_fn, theta)
        g = torch.func.grad(loss_fn)(theta)
    A = torch.eye(len(theta)) + H / lam
    assert torch.linalg.eigvalsh(A).min() > 0.1
    running = learner.body[1].running_mean.clone()
    got = method.meta_grad(1, pop)  # one learner: its own implicit gradient
    torch.testing.assert_close(got, torch.linalg.solve(A, g), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, g, atol=1e-3), "the Hessian must matter"
    assert torch.equal(learner.body[1].running_mean, running), "BatchNorm running statistics untouched"


# ---- ANIL ---------------------------------------------------------------------------
def toy_population():
    torch.manual_seed(0)
    body = ConvNet(1, 4)
    names = ["toy_a", "toy_b"]
    specs = [TASKS.get(n) for n in names]
    streams, val_streams = [], []
    for s in specs:
        train, val = split_train_val(make_toy(s.name, s.num_classes), 0.25, 0, s.name)
        streams.append(TaskStream(train.train_x, train.train_y, s, 8, (0, s.name, "train"), "cpu"))
        val_streams.append(TaskStream(val.train_x, val.train_y, s, 8, (0, s.name, "val"), "cpu"))
    pop = Population(body, flat_params(body), [s.num_classes for s in specs],
                     [generator(0, n, "head") for n in names], inner_lr=0.05, momentum=0.9, weight_decay=5e-4,
                     val_batches=lambda i, step: val_streams[i].batch(step))
    return pop, streams


def inner_step(pop, streams, step, method=None):
    """The runner's step: every learner's loss backward into G (and into train_losses), the
    method's before_step, then the population's SGD step."""
    pop.step = step
    for i, (learner, s) in enumerate(zip(pop.learners, streams)):
        x, y = s.batch(step)
        loss = F.cross_entropy(learner(x), y)
        loss.backward()
        pop.train_losses[i] = loss.detach()
    if method is not None:
        method.before_step(step, pop)
    pop.inner_step()


@pytest.mark.parametrize("shift", [True, False])
def test_anil_body_is_frozen_in_the_inner_loop(shift):
    pop, streams = toy_population()
    method = build("anil", meta_lr=0.1, reset_every=4, aggregate_every=2, shift=shift)
    method.setup(pop)
    P = pop.theta.numel()
    heads0 = pop.W[P:].clone()
    frozen = pop.phi.clone()  # where the bodies are held
    for step in range(1, 7):
        before = pop.phi.clone()
        inner_step(pop, streams, step)
        assert not torch.equal(pop.theta, frozen.expand_as(pop.theta)), "the runner's step moves the bodies"
        method.after_step(step, pop)
        meta = step % 2 == 0
        assert torch.equal(pop.phi, before) != meta, f"step {step}: phi moves only at meta-updates"
        if shift or step % 4 == 0:
            frozen = pop.phi.clone()  # the bodies follow phi at meta-updates, or at the reset
        assert torch.equal(pop.theta, frozen.expand_as(pop.theta)), f"step {step}: bodies frozen"
        assert not pop.M[:P].any(), "the bodies carry no momentum"
    assert not torch.allclose(pop.W[P:], heads0), "the heads adapt"


# ---- every new method, end to end and resumable ---------------------------------------
@pytest.mark.parametrize("name,extra", [("leap", []), ("leap", ["method.loss_term=false"]), ("imaml", []),
                                        ("anil", [])])
def test_runs_end_to_end_on_toy(name, extra, tmp_path):
    cfg = make_config("suite=toy", f"method={name}", f"results_dir={tmp_path}", "train.steps=10",
                      "method.reset_every=5", *extra)
    run = execute(cfg, progress=False)
    assert run.done
    body = build_body(cfg, 1)
    body.load_state_dict(run.load_phi("final"))
    phi = flat_params(body)
    assert torch.isfinite(phi).all()
    assert not torch.equal(phi, flat_params(initial_body(cfg, 1))), "meta-training must move phi"
    assert all(torch.isfinite(torch.tensor([r["loss"] for r in run.read("metrics")])))


@pytest.mark.parametrize("name", NEW)
def test_state_dict_resumes_exactly(name):
    """Four steps, a checkpoint of population and method, four more: a fresh population and
    method loaded from the checkpoint must end bit-identical."""
    cfg = {"meta_lr": 0.1, "reset_every": 3, "aggregate_every": 1 if name == "anil" else 3}

    def steps(pop, streams, method, first, last):
        for step in range(first, last + 1):
            inner_step(pop, streams, step, method)
            method.after_step(step, pop)

    pop, streams = toy_population()
    method = build(name, **cfg)
    method.setup(pop)
    steps(pop, streams, method, 1, 4)
    pop_state, method_state = pop.state_dict(), method.state_dict()
    steps(pop, streams, method, 5, 8)
    again, streams = toy_population()
    resumed = build(name, **cfg)
    resumed.setup(again)
    again.load_state_dict(pop_state)
    resumed.load_state_dict(method_state)
    steps(again, streams, resumed, 5, 8)
    assert torch.equal(again.phi, pop.phi) and torch.equal(again.W, pop.W)
    if name == "leap":  # the checkpoint carried the last point's training loss and gradient
        assert method_state["prev"][2] is not None and method_state["prev"][3].abs().sum() > 0
