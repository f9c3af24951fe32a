"""Meta-test: train each target task from phi (body) plus a fresh head; report test accuracy.

The recipe is the authors' ``train_tgt.py`` as their README runs it (batch 128, 1000 steps, Adam at
1e-3; ``suite=paper`` sets these; their flag defaults differ only in 10000 steps, line 15), scaled by
``metatest.*`` on smaller suites. The same as theirs:
- The body gets phi's parameters only (lines 103-105 load ``base_param``, which holds no BatchNorm
  buffers), so the running statistics start at BatchNorm's defaults; here ``phi_state`` gives the
  same. The head is fresh, with nn.Linear's default init (``models/resnet_small.py`` line 120,
  which the init loop at lines 122-127 leaves alone), as ``init_head`` draws it here.
- Every parameter is trained with Adam and L2 weight decay 5e-4 (``utils.py`` line 16 fixes 5e-4,
  whatever the flag; here ``metatest.weight_decay``), lr 1e-3 (line 18), under a step schedule:
  x0.3 at int(f * steps) for f in 0.4, 0.7, 0.9 (``utils.py`` lines 26-29), stepped after every
  step (line 150).
- Training runs in train mode (line 45) on random crops (padding 4 at 32 px) and flips, normalized
  with mean 0.5, std 0.5 (``dataloader.py`` lines 25-35, 45); the test runs in eval mode (line 67),
  BatchNorm on its running statistics, on images only resized and normalized (line 46).
- The reported number is the test accuracy after the last step (they also test every 200 steps,
  lines 151-152, which does not touch training).

With ``runner.compile=true`` the training steps take the meta-training step's compiled body
forward (``benchmark.core.compiled``): close to eager, not equal; the test pass stays eager.

Deviation from the authors' code:
- Every test image is scored. Their test loader has ``drop_last=True`` (``dataloader.py`` lines
  53, 57; so does the earlier loader that ``train_tgt.py`` line 92's three-value call matches,
  lines 75, 78), so up to batch_size - 1 test images are never scored. A deliberate improvement.
- The head's init and the target's batches depend only on (seed, target), so every method is tested
  on the same stream and differences come from phi alone; theirs come from unseeded global
  generators. The stream drops no image: a batch that runs past an epoch's end goes on into the
  next epoch (their training loader drops the partial batch, ``dataloader.py`` lines 53-55).
- A non-finite training loss (tracked on the device, read once after the meta-test's steps)
  makes the meta-test raise ``benchmark.core.train.Diverged`` instead of reporting an accuracy;
  theirs trains on and reports the accuracy it gets.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.config import Config
from benchmark.core.compiled import body_forward
from benchmark.core.data import TaskStream, normalize
from benchmark.core.population import Learner, init_head
from benchmark.core.train import Diverged
from benchmark.models import build_body
from benchmark.seeding import generator
from tasks.registry import TaskSpec, Splits


class TooFewImages(ValueError):
    """A ``metatest.train_sizes`` entry larger than a target's smallest class."""


def check_train_sizes(cfg: Config, data: dict[str, Splits]) -> None:
    """Every requested limited-data size fits every target; raised before any compute."""
    for target in cfg.suite.targets:
        smallest = int(torch.bincount(data[target].train_y).min())
        big = [n for n in cfg.metatest.train_sizes if n > smallest]
        if big:
            raise TooFewImages(f"metatest.train_sizes: {big} images per class is more than target {target} has "
                               f"(its smallest class has {smallest} training images)")


def limited(splits: Splits, per_class: int, seed: int, task: str) -> Splits:
    """The same test split; ``per_class`` training images of each class, drawn by (seed, task, size)
    alone, so every method meets the same subset (a stratified draw without replacement)."""
    g = generator(seed, task, "train_size", per_class)
    keep = []
    for c in range(int(splits.train_y.max()) + 1):
        idx = (splits.train_y == c).nonzero().flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    keep = torch.cat(keep).sort().values
    return Splits(splits.train_x[keep], splits.train_y[keep], splits.test_x, splits.test_y)


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
    first_bad = torch.zeros((), dtype=torch.long, device=device)  # on the device: no sync per step
    forward = body_forward(cfg.runner.compile)  # the meta-training step's compiled body, when compiled
    for step in bar:
        x, y = stream.batch(step)
        loss = F.cross_entropy(model.head(forward(model.body, x)), y)
        first_bad.masked_fill_((first_bad == 0) & ~torch.isfinite(loss.detach()), step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    if first_bad.item():
        raise Diverged("meta-test", int(first_bad), spec.name)
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
