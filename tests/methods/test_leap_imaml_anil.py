"""Leap, iMAML and ANIL: their update rules against hand or closed-form numbers, ANIL's
frozen body through a real population, and each method end to end on the toy suite."""
import pytest
import torch
import torch.nn.functional as F

from benchmark.data import TaskStream, generator, split_train_val
from benchmark.models import ConvNet, flat_params
from benchmark.population import Population
from benchmark.run import execute
from benchmark.models import build_body
from benchmark.train import initial_body
from helpers import make_config
from methods.base import METHODS
from methods.imaml import batch_statistics_only, body_loss, implicit_grad
from methods.leap import leap_increment
from tasks.registry import TASKS
from tasks.toy import make_toy
from test_update_rules import hand_population

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


def test_leap_policy_by_hand():
    """Two tasks, K = 2, beta = 0.5. Task 0 walks the trajectory above; task 1 moves (0, -3)
    with a flat loss of 1 (increment -(0, -3)/3 = (0, 1)) and then stands still (nothing).
    The meta-gradient is the mean over tasks of the summed increments:
        ((-1.4 + 0) / 2, (-1.2 + 7/13 + 1) / 2) = (-0.7, 0.1692308)
    so phi = 0 - 0.5 * that = (0.35, -0.0846154), and the learners are reset to it."""
    method = build("leap", meta_lr=0.5, reset_every=2, aggregate_every=2)
    assert method.needs_val
    pop = hand_population()
    flat, other = torch.ones(1), torch.tensor([[5.0, 5.0]])
    points = iter([  # (losses, grads) at: phi (the run's start), step 1, step 2, phi after the reset
        (torch.cat([LOSS[:1], flat]), torch.cat([GRAD[:1], other])),
        (torch.cat([LOSS[1:2], flat]), torch.cat([GRAD[1:2], other])),
        (torch.cat([LOSS[2:], flat]), torch.cat([GRAD[2:], other])),
        (torch.tensor([7.0, 7.0]), torch.zeros(2, 2)),
    ])
    pop.val_losses_and_grads = lambda: next(points)
    method.setup(pop, 2)
    moves = [torch.tensor([[4.0, 0.0], [0.0, -3.0]]), torch.tensor([[0.0, 5.0], [0.0, 0.0]])]
    pop.theta += moves[0]
    method.after_step(1, pop)
    assert torch.equal(pop.phi, torch.zeros(2)), "no meta-update before aggregate_every"
    pop.theta += moves[1]
    method.after_step(2, pop)
    close(pop.phi, [0.35, -0.5 * (-0.2 + 7 / 13) / 2])
    assert torch.equal(pop.theta, pop.phi.expand(2, 2))
    assert torch.equal(method.meta_grad, torch.zeros(2, 2))
    start = method.prev  # the next trajectory starts at phi, scored after the reset
    assert torch.equal(start.theta, pop.phi.expand(2, 2)) and start.loss.tolist() == [7.0, 7.0]


def test_leap_without_loss_term_needs_no_validation_data():
    """Path length in parameter space only: task 0 gives (-1, 0) + (0, -1), task 1 (0, 1)
    (its second, zero-length segment nothing); mean (-0.5, 0); phi = -0.5 * mean = (0.25, 0)."""
    method = build("leap", meta_lr=0.5, reset_every=2, aggregate_every=2, loss_term=False)
    assert not method.needs_val
    pop = hand_population()
    method.evaluate = None  # must not be called
    method.setup(pop, 2)
    pop.theta += torch.tensor([[4.0, 0.0], [0.0, -3.0]])
    method.after_step(1, pop)
    pop.theta += torch.tensor([[0.0, 5.0], [0.0, 0.0]])
    method.after_step(2, pop)
    close(pop.phi, [0.25, 0.0])


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


def test_imaml_task_meta_grad_is_the_dense_solve_on_a_learner():
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
    got = method.task_meta_grad(pop, 0)
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


def inner_step(pop, streams, step):
    """The runner's step: every learner's loss backward into G, then the population's SGD step."""
    pop.step = step
    for learner, s in zip(pop.learners, streams):
        x, y = s.batch(step)
        F.cross_entropy(learner(x), y).backward()
    pop.inner_step()


@pytest.mark.parametrize("shift", [True, False])
def test_anil_body_is_frozen_in_the_inner_loop(shift):
    pop, streams = toy_population()
    method = build("anil", meta_lr=0.1, reset_every=4, aggregate_every=2, shift=shift)
    method.setup(pop, 6)
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
            inner_step(pop, streams, step)
            method.after_step(step, pop)

    pop, streams = toy_population()
    method = build(name, **cfg)
    method.setup(pop, 8)
    steps(pop, streams, method, 1, 4)
    pop_state, method_state = pop.state_dict(), method.state_dict()
    steps(pop, streams, method, 5, 8)
    again, streams = toy_population()
    resumed = build(name, **cfg)
    resumed.setup(again, 8)
    again.load_state_dict(pop_state)
    resumed.load_state_dict(method_state)
    steps(again, streams, resumed, 5, 8)
    assert torch.equal(again.phi, pop.phi) and torch.equal(again.W, pop.W)
