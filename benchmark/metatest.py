"""Meta-test: train each target task from phi (body) plus a fresh head; report test accuracy.

The recipe is the paper's, scaled by ``metatest.*``: Adam with L2 weight decay and a
step schedule (x gamma at the given fractions of the steps). The head's init and the
target's batches depend only on (seed, target), so every method is tested on the same
stream and differences come from phi alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.config import Config
from benchmark.data import TaskStream, generator, normalize
from benchmark.population import Learner, init_head
from benchmark.train import build_body
from tasks.registry import TaskSpec, Splits


def meta_test(cfg: Config, phi: dict, spec: TaskSpec, splits: Splits, device: torch.device,
              progress: bool = True, desc: str = "") -> float:
    body = build_body(cfg, spec.channels)
    body.load_state_dict(phi)
    head = torch.nn.Linear(body.out_features, spec.num_classes)
    init_head(head, generator(cfg.seed, spec.name, "head"))
    model = Learner(body, head).to(device)
    mt = cfg.metatest
    opt = torch.optim.Adam(model.parameters(), lr=mt.lr, weight_decay=mt.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(m * mt.steps) for m in mt.milestones], mt.gamma)
    stream = TaskStream(splits.train_x, splits.train_y, spec, mt.batch_size, (cfg.seed, spec.name, "metatest"), device)
    model.train()
    bar = tqdm(range(1, mt.steps + 1), desc=desc or f"meta-test {spec.name}", disable=None if progress else True,
               leave=False, dynamic_ncols=True, mininterval=1.0)
    for step in bar:
        x, y = stream.batch(step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return evaluate(model, splits.test_x, splits.test_y, spec, device)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, spec: TaskSpec, device,
             batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        xb = normalize(x[i : i + batch_size].to(device), 1.0 / (255.0 * spec.std), spec.mean / spec.std)
        correct += int((model(xb).argmax(1) == y[i : i + batch_size].to(device)).sum())
    model.train()
    return correct / len(y)
