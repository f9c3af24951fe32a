"""Measure the runner's per-step overhead; not a unit test (timings are noisy).

Prints one line of timings per repeat, then the configuration and four ratios, each as
the median (and every value) over interleaved repeats in this one process:

- runner / bare: one inner step of ``meta_train`` (method ``reptile`` with K = steps, so
  no meta-update) against a bare PyTorch loop doing the same SGD steps with separate
  models and ``torch.optim.SGD`` on the same preloaded uint8 tensors;
- ours / reptile(K = steps): the cost of CTS's per-step meta-update and shift, as the
  ratio of meta-training wall times;
- reptile / reptile: the same configuration timed twice, the noise floor of the ratio
  above (an A/A test);
- the policy's share: the time ``after_step`` itself takes inside those same runs, as a
  fraction of reptile's meta-training time. This is the same quantity measured without
  the run-to-run noise, which on a shared machine is tens of percent;
- compiled / bare and compiled / reptile: reptile again with ``runner.compile=true``,
  against the bare (eager) loop and the eager runner; the reptile A/A above is its noise
  floor too. Before the repeats it prints the seconds the first compiled run took until
  its first step was done (compilation, or loading it from inductor's cache) and how many
  graphs dynamo compiled; unless ``--no-compile``.

Repeats are short and alternate their order (reptile, ours, reptile again, compiled; then
reversed), so a slow drift of the machine's speed cancels over pairs of repeats.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from benchmark.config import cores, validate
from benchmark.core.compiled import check_compile
from benchmark.core.data import normalize
from benchmark.core.population import Learner
from benchmark.core.train import initial_body, meta_train
from benchmark.perf import check_counts
from benchmark.runtime.distributed import device_for
from benchmark.runtime.execute import load_data
from benchmark.runtime.storage import RunDir
from methods.base import METHODS
from tasks.registry import TASKS


class PolicyTimer:
    """Accumulates the wall time of every ``after_step`` call of one method class."""

    def __init__(self, cls, device: torch.device):
        self.seconds, inner = 0.0, cls.after_step
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

        def after_step(method, step, pop):
            sync()
            t = time.perf_counter()
            inner(method, step, pop)
            sync()
            self.seconds += time.perf_counter() - t

        cls.after_step = after_step


def runner_seconds(overrides: list[str], data, device, timer: PolicyTimer) -> tuple[float, float]:
    """(meta-training wall seconds, seconds of it spent in the method's ``after_step``)."""
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        cfg = validate(compose("config", overrides=overrides))
    with tempfile.TemporaryDirectory() as tmp:
        cfg.results_dir = tmp
        run = RunDir(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
        run.start(1)
        timer.seconds = 0.0
        method = METHODS.get(cfg.method.name).build(cfg.method)
        wall = meta_train(cfg, method, run, data, device, progress=False)["wall_seconds"]
        return wall, timer.seconds


def bare_seconds(cfg, data, device, steps: int) -> float:
    """The reference: what a researcher would write by hand, with no framework."""
    specs = [TASKS.get(n) for n in cfg.suite.sources]
    body = initial_body(cfg, specs[0].channels).to(device)
    models = [Learner(copy.deepcopy(body), torch.nn.Linear(body.out_features, s.num_classes)).to(device)
              for s in specs]
    t = cfg.train
    opts = [torch.optim.SGD(m.parameters(), lr=t.inner_lr, momentum=t.momentum, weight_decay=t.weight_decay)
            for m in models]
    xs = [data[s.name].train_x.to(device) for s in specs]
    ys = [data[s.name].train_y.to(device) for s in specs]
    start = time.perf_counter()
    for _ in range(steps):
        for m, opt, x, y, s in zip(models, opts, xs, ys, specs):
            idx = torch.randint(len(y), (t.batch_size,), device=device)
            xb = normalize(x[idx], 1 / (255 * s.std), s.mean / s.std)
            opt.zero_grad()
            F.cross_entropy(m(xb), y[idx]).backward()
            opt.step()
    return time.perf_counter() - start


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21, help="interleaved repeats (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=25,
                        help="inner steps per timed run, also Reptile's K (default: %(default)s)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the runner with runner.compile=true (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, as for python -m benchmark.run (e.g. suite=toy runner.threads=1)")
    args = parser.parse_intermixed_args(argv)
    check_counts(parser, args, ("repeats", "steps"))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    repeats, steps = args.repeats, args.steps
    base = [*args.overrides, f"train.steps={steps}", f"train.log_every={steps}"]
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        cfg = validate(compose("config", overrides=base))
    torch.set_num_threads(cfg.runner.threads or cores())
    device = device_for(cfg.runner.device, None)
    data = load_data(cfg, METHODS.get(cfg.method.name).build(cfg.method))
    reptile = [*base, "method=reptile", f"method.reset_every={steps}"]
    ours = [*base, "method=ours"]
    compiled = [*reptile, "runner.compile=true"]
    runs = {"reptile": reptile, "ours": ours, "again": reptile, **({"compiled": compiled} if args.compile else {})}
    timer = PolicyTimer(METHODS.get("ours").build, device)  # Reptile is CTS without the shift: timed too
    bare_seconds(cfg, data, device, 5)  # warm-up
    runner_seconds(reptile, data, device, timer)
    if args.compile:
        check_compile(device)
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        first, _ = runner_seconds([*compiled, "train.steps=1", "train.log_every=1", "method.reset_every=1"], data,
                                  device, timer)
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs
        print(f"compiled: first step done after {first:.1f}s; graphs compiled: {graphs}", flush=True)
    wall = {name: [] for name in ("bare", *runs)}
    policy = {name: [] for name in runs}  # seconds in after_step
    for i in range(repeats):
        wall["bare"].append(bare_seconds(cfg, data, device, steps))
        for name in list(runs) if i % 2 == 0 else list(runs)[::-1]:
            t, p = runner_seconds(runs[name], data, device, timer)
            wall[name].append(t)
            policy[name].append(p)
        print(f"repeat {i}: " + "  ".join(f"{name} {t[-1]:.2f}s" for name, t in wall.items())
              + f"  (ours' after_step {1e3 * policy['ours'][-1] / steps:.3f} ms/step)", flush=True)
    print(f"suite={cfg.suite.name} steps={steps} tasks={len(cfg.suite.sources)} threads={torch.get_num_threads()}")
    for name, t in wall.items():
        print(f"{name + ':':30s}median {1e3 * statistics.median(t) / steps:.2f} ms/step")

    def ratio(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(wall[a], wall[b])]

    share = [(p - q) / t for p, q, t in zip(policy["ours"], policy["reptile"], wall["reptile"])]
    rows = [("runner / bare PyTorch loop", ratio("reptile", "bare")), ("ours / reptile(K=steps)", ratio("ours", "reptile")),
            ("reptile / reptile (A/A)", ratio("again", "reptile")), ("1 + CTS after_step share", [1 + s for s in share])]
    if args.compile:
        rows += [("compiled / bare PyTorch loop", ratio("compiled", "bare")),
                 ("compiled / reptile (eager)", ratio("compiled", "reptile"))]
    for label, ratios in rows:
        print(f"{label + ':':30s}median {statistics.median(ratios):.4f} (all: "
              + ", ".join(f"{r:.3f}" for r in ratios) + ")")


if __name__ == "__main__":
    main()
