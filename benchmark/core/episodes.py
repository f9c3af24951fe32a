"""Few-shot episodes from the learned initialization, drawn with learn2learn's task pipeline.

The few-shot regime of "A Closer Look at Few-shot Classification" (Chen et al., ICLR 2019),
Meta-Dataset and learn2learn: N-way K-shot episodes over a target's *test* split, the
accuracy on each episode's queries averaged over ``metatest.episodes`` episodes and reported
with its 95% interval, 1.96 sd / sqrt(episodes) (sd over episodes, ddof 1).

- Episodes come from learn2learn's ``MetaDataset`` / ``TaskDataset`` (``Taskset``) with ``NWays``,
  ``KShots`` (shots + queries images of each class, without replacement), ``LoadData`` and
  ``RemapLabels``, over the uint8 test tensors (an item is a tensor view; the collate
  stacks the episode into one uint8 batch, normalized on the device: no PIL, no per-image
  transform). learn2learn draws from Python's ``random``; each episode seeds it from
  (seed, target, episode index) and then restores it, so every method, and every repeat,
  meets the same classes and images. The 1-shot and 5-shot episodes of one index share
  their classes.
- A fresh head (nn.Linear's default init, drawn from (seed, target, episode index)) is
  fitted on the support set with ``metatest.episode_steps`` full-batch Adam steps at
  ``metatest.episode_lr``; with ``metatest.episode_body=frozen`` (the default, a linear probe
  of phi's features, as Chen et al.'s Baseline) the body is fixed, with ``finetune`` it is
  trained too. Then the queries are scored.
- BatchNorm: phi carries no running statistics (``benchmark.core.train.phi_state``), so each
  episode estimates them from its support set alone (a cumulative average over one pass),
  then scores the queries in eval mode: nothing is learned from the queries (not transductive).

``python -m benchmark.episodes`` scores finished runs this way without training them again.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import random
from typing import Iterator

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.config import Config
from benchmark.core.data import normalize
from benchmark.core.metatest import TooFewImages
from benchmark.core.population import init_head
from benchmark.models import build_body
from benchmark.seeding import generator, stable_seed
from tasks.registry import TASKS, Splits, TaskSpec
from tasks.user import with_channels

Z95 = 1.96
log = logging.getLogger("lsml")


class ImpossibleEpisodes(TooFewImages):
    """An episode that a target's test split cannot supply; the message names the key."""


def check(cfg: Config, data: dict[str, Splits]) -> None:
    """Every target can supply every requested episode; raised before any compute."""
    mt = cfg.metatest
    if not mt.episodes:
        return
    try:  # here, not after meta-training
        with contextlib.redirect_stderr(io.StringIO()):
            import learn2learn.data  # noqa: F401
    except ImportError as e:
        raise ImpossibleEpisodes(f"metatest.episodes: needs learn2learn ({e}); scripts/install_learn2learn.sh "
                                 "installs it") from None
    for target in cfg.suite.targets:
        counts = torch.bincount(data[target].test_y)
        classes, smallest = int((counts > 0).sum()), int(counts[counts > 0].min())
        if mt.episode_ways > classes:
            raise ImpossibleEpisodes(f"metatest.episode_ways: {mt.episode_ways} ways, but target {target} has "
                                     f"{classes} classes")
        need = max(mt.episode_shots) + mt.episode_queries
        if need > smallest:
            raise ImpossibleEpisodes(
                f"metatest.episode_shots: {max(mt.episode_shots)} shots + {mt.episode_queries} queries "
                f"(metatest.episode_queries) = {need} images per class, but target {target}'s smallest class has "
                f"{smallest} test images")


class _Images(torch.utils.data.Dataset):
    """A split's uint8 images as a dataset: an item is a view, never a PIL image."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y.tolist()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], self.y[i]


def task_set(x: torch.Tensor, y: torch.Tensor, ways: int, shots: int, queries: int):
    """learn2learn's TaskDataset (``Taskset``, its name since 0.2.0) of ``ways``-way episodes of
    ``shots + queries`` images per class."""
    with contextlib.redirect_stderr(io.StringIO()):  # lazy: only episodic runs need it; learn2learn imports
        from learn2learn.data import MetaDataset, Taskset  # gym, which prints a deprecation notice
        from learn2learn.data.transforms import KShots, LoadData, NWays, RemapLabels

    labels = {c: (y == c).nonzero().flatten().tolist() for c in sorted(set(y.tolist()))}
    dataset = MetaDataset(_Images(x, y), labels_to_indices=labels)
    transforms = [NWays(dataset, ways), KShots(dataset, shots + queries), LoadData(dataset), RemapLabels(dataset)]
    return Taskset(dataset, transforms, num_tasks=-1)


@contextlib.contextmanager
def _python_random(*parts: object) -> Iterator[None]:
    """Python's ``random`` (which learn2learn draws from) seeded by ``parts``, then restored."""
    state = random.getstate()
    random.seed(stable_seed(*parts))
    try:
        yield
    finally:
        random.setstate(state)


def episode(tasks, shots: int, seed: int, target: str, index: int) -> tuple[torch.Tensor, ...]:
    """(support x, support y, query x, query y) of episode ``index``: uint8 images, labels 0..ways-1.
    Each class's first ``shots`` images (in learn2learn's random order) are its support."""
    with _python_random(seed, target, "episode", index):
        x, y = tasks.sample()
    rank = torch.zeros_like(y)
    for c in y.unique():
        at = (y == c).nonzero().flatten()
        rank[at] = torch.arange(len(at))
    support = rank < shots
    return x[support], y[support], x[~support], y[~support]


def _estimate_batchnorm(body: torch.nn.Module, x: torch.Tensor) -> None:
    """BatchNorm running statistics from ``x`` alone (cumulative average of one pass); then eval mode."""
    for m in body.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    body.train()
    with torch.no_grad():
        body(x)
    body.eval()


def score(cfg: Config, phi: dict, body: torch.nn.Module, spec: TaskSpec, support: tuple, query: tuple,
          ways: int, head_gen: torch.Generator, device) -> float:
    """Query accuracy of a fresh head fitted on the support set (the body frozen or fine-tuned)."""
    mt = cfg.metatest
    scale, shift = 1.0 / (255.0 * spec.std), spec.mean / spec.std
    sx, sy = normalize(support[0].to(device), scale, shift), support[1].to(device)
    qx, qy = normalize(query[0].to(device), scale, shift), query[1].to(device)
    body.load_state_dict(phi)
    head = torch.nn.Linear(body.out_features, ways)
    init_head(head, head_gen)
    head.to(device)
    if mt.episode_body == "frozen":
        _estimate_batchnorm(body, sx)
        with torch.no_grad():
            features, query_features = body(sx), body(qx)
        params, forward = list(head.parameters()), lambda: head(features)
    else:
        body.train()
        params, forward = [*body.parameters(), *head.parameters()], lambda: head(body(sx))
    opt = torch.optim.Adam(params, lr=mt.episode_lr)
    for _ in range(mt.episode_steps):
        loss = F.cross_entropy(forward(), sy)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        if mt.episode_body == "finetune":
            _estimate_batchnorm(body, sx)
            query_features = body(qx)
        return float((head(query_features).argmax(1) == qy).float().mean())


def evaluate(cfg: Config, phi: dict, spec: TaskSpec, splits: Splits, device, inner_steps: int,
             progress: bool = False) -> list[dict]:
    """One ``metatest.jsonl`` row per shot count: mean query accuracy over the episodes, sd, 95% interval."""
    mt = cfg.metatest
    body = build_body(cfg, spec.channels).to(device)
    rows = []
    for shots in mt.episode_shots:
        tasks = task_set(splits.test_x, splits.test_y, mt.episode_ways, shots, mt.episode_queries)
        accs = []
        for i in tqdm(range(mt.episodes), desc=f"episodes {spec.name} {mt.episode_ways}-way {shots}-shot",
                      disable=None if progress else True, leave=False, dynamic_ncols=True, mininterval=1.0):
            sx, sy, qx, qy = episode(tasks, shots, cfg.seed, spec.name, i)
            accs.append(score(cfg, phi, body, spec, (sx, sy), (qx, qy), mt.episode_ways,
                              generator(cfg.seed, spec.name, "episode", i, "head"), device))
        acc = torch.tensor(accs, dtype=torch.float64)
        sd = float(acc.std()) if len(accs) > 1 else 0.0
        rows.append({"target": spec.name, "role": "target", "phi_step": "final", "inner_steps": inner_steps,
                     "protocol": "episodes", "ways": mt.episode_ways, "shots": shots, "queries": mt.episode_queries,
                     "episodes": mt.episodes, "body": mt.episode_body, "episode_steps": mt.episode_steps,
                     "episode_lr": mt.episode_lr, "accuracy": float(acc.mean()), "sd": sd,
                     "ci95": Z95 * sd / math.sqrt(len(accs))})
    return rows


def rows(cfg: Config, phi: dict, data: dict[str, Splits], device, inner_steps: int, progress: bool = False
         ) -> list[dict]:
    """The episodic rows of every target of the run."""
    return [row for target in cfg.suite.targets
            for row in evaluate(cfg, phi, with_channels(TASKS.get(target), cfg.data.channels), data[target], device,
                                inner_steps, progress)]


SETTINGS = ("target", "ways", "shots", "queries", "episodes", "body", "episode_steps", "episode_lr")


def same_settings(a: dict, b: dict) -> bool:
    """Two episodic rows of one protocol and target (a rerun replaces, never duplicates)."""
    return all(a.get(k) == b.get(k) for k in SETTINGS)
