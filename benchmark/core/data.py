"""Task data streams whose batches depend only on (seed, task, step).

The whole dataset sits on the run's device as uint8; a batch is an index gather, an
optional batched augmentation (random crop with padding, horizontal flip) and a
normalization, all tensor operations. Sampling walks a fresh permutation per epoch,
each drawn from a generator seeded by (seed, task, epoch), and augmentation draws from
one seeded by (seed, task, step): so methods see identical data, any process layout
gives the same batches, and a resumed run needs only the step.
"""
from __future__ import annotations

import torch

from benchmark.seeding import generator, stable_seed
from tasks.registry import Splits, TaskSpec


def val_indices(n: int, val_fraction: float, seed: int, task: str) -> torch.Tensor:
    """The validation part of a training set of size n: fixed by (seed, task), sorted."""
    perm = torch.randperm(n, generator=generator("val-split", seed, task))
    return perm[: int(round(n * val_fraction))].sort().values


def split_train_val(splits: Splits, val_fraction: float, seed: int, task: str) -> tuple[Splits, Splits]:
    """A fixed split of the training set: (train part, val part as its 'train' tensors)."""
    n = len(splits.train_y)
    val = val_indices(n, val_fraction, seed, task)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    train = keep.nonzero().squeeze(1)
    x, y = splits.train_x, splits.train_y
    return (
        Splits(x[train], y[train], splits.test_x, splits.test_y),
        Splits(x[val], y[val], splits.test_x, splits.test_y),
    )


class TaskStream:
    """Training batches of one task: ``batch(step)`` for step = 1, 2, ..."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, spec: TaskSpec, batch_size: int, key: tuple, device):
        self.x, self.y = x.to(device), y.to(device)
        self.n, self.batch_size, self.key, self.spec = len(y), batch_size, key, spec
        self.scale, self.shift = 1.0 / (255.0 * spec.std), spec.mean / spec.std
        self._perms: dict[int, torch.Tensor] = {}
        self._aug = torch.Generator(device=device) if spec.pad or spec.flip else None

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = generator(*self.key, "epoch", epoch)
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}
            self._perms[epoch] = torch.randperm(self.n, generator=g).to(self.x.device)
        return self._perms[epoch]

    def indices(self, step: int) -> torch.Tensor:
        start = (step - 1) * self.batch_size
        first, last = start // self.n, (start + self.batch_size - 1) // self.n
        offset = start - first * self.n
        if first == last:
            return self._perm(first)[offset : offset + self.batch_size]
        parts = [self._perm(e) for e in range(first, last + 1)]
        return torch.cat(parts)[offset : offset + self.batch_size]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.indices(step)
        x = self.x[idx]
        if self._aug is not None:
            self._aug.manual_seed(stable_seed(*self.key, "aug", step))
            x = augment(x, self.spec.pad, self.spec.flip, self._aug)
        return normalize(x, self.scale, self.shift), self.y[idx]


def normalize(x: torch.Tensor, scale: float, shift: float) -> torch.Tensor:
    """uint8 -> float: (x / 255 - mean) / std."""
    return x.float().mul_(scale).sub_(shift)


def augment(x: torch.Tensor, pad: int, flip: bool, g: torch.Generator) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``) and horizontal flip of uint8 images."""
    B, C, H, W = x.shape
    if pad:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (B, 1, 1), generator=g, device=x.device)
        ox = torch.randint(0, 2 * pad + 1, (B, 1, 1), generator=g, device=x.device)
        rows = oy + torch.arange(H, device=x.device).view(1, H, 1)
        cols = ox + torch.arange(W, device=x.device).view(1, 1, W)
        b = torch.arange(B, device=x.device).view(B, 1, 1)
        x = padded.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(B, generator=g, device=x.device) < 0.5
        x = torch.where(mask.view(B, 1, 1, 1), x.flip(3), x)
    return x
