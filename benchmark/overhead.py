"""Measure the runner's per-step overhead; not a unit test (timings are noisy).

    python -m benchmark.overhead [repeats=5] [steps=100] [key=value ...]

Reports, as medians over interleaved repeats in this one process:

- runner / bare: one inner step of ``meta_train`` (method ``reptile`` with K = steps, so
  no meta-update) against a bare PyTorch loop doing the same SGD steps with separate
  models and ``torch.optim.SGD`` on the same preloaded uint8 tensors;
- ours / reptile(K = steps): the cost of CTS's per-step meta-update and shift.
"""
from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from benchmark.config import cores, validate
from benchmark.data import normalize
from benchmark.population import Learner
from benchmark.distributed import device_for
from benchmark.run import load_data
from benchmark.storage import RunDir
from benchmark.train import initial_body, meta_train
from tasks.registry import TASKS


def runner_seconds(overrides: list[str], data, device) -> float:
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        cfg = validate(compose("config", overrides=overrides))
    with tempfile.TemporaryDirectory() as tmp:
        cfg.results_dir = tmp
        run = RunDir(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
        run.start(1)
        return meta_train(cfg, run, data, device, progress=False)["wall_seconds"]


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


def main(argv: list[str]) -> None:
    opts = dict(a.split("=", 1) for a in argv if a.split("=", 1)[0] in ("repeats", "steps"))
    overrides = [a for a in argv if a.split("=", 1)[0] not in ("repeats", "steps")]
    repeats, steps = int(opts.get("repeats", 5)), int(opts.get("steps", 100))
    base = [*overrides, f"train.steps={steps}", f"train.log_every={steps}"]
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        cfg = validate(compose("config", overrides=base))
    torch.set_num_threads(cfg.runner.threads or cores())
    device = device_for(cfg.runner.device, None)
    data = load_data(cfg)
    reptile = [*base, "method=reptile", f"method.reset_every={steps}"]
    ours = [*base, "method=ours"]
    bare_seconds(cfg, data, device, 5)  # warm-up
    runner_seconds(reptile, data, device)
    r_bare, r_cts = [], []
    for i in range(repeats):
        t_bare = bare_seconds(cfg, data, device, steps)
        t_rep = runner_seconds(reptile, data, device)
        t_ours = runner_seconds(ours, data, device)
        r_bare.append(t_rep / t_bare)
        r_cts.append(t_ours / t_rep)
        print(f"repeat {i}: bare {t_bare:.2f}s  reptile(K=steps) {t_rep:.2f}s  ours {t_ours:.2f}s  "
              f"per task-step bare {1e3 * t_bare / steps / len(cfg.suite.sources):.2f} ms", flush=True)
    print(f"suite={cfg.suite.name} steps={steps} tasks={len(cfg.suite.sources)} threads={torch.get_num_threads()}")
    print(f"runner / bare PyTorch loop: median {statistics.median(r_bare):.3f} (all: "
          + ", ".join(f"{r:.3f}" for r in r_bare) + ")")
    print(f"ours / reptile(K=steps):    median {statistics.median(r_cts):.3f} (all: "
          + ", ".join(f"{r:.3f}" for r in r_cts) + ")")


if __name__ == "__main__":
    main(sys.argv[1:])
