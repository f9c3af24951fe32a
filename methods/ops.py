"""Pure parameter-space operations shared by the methods, over flat vectors.

Each is a few lines of tensor algebra, tested against hand-computed numbers in
``tests/methods/test_ops.py``.
"""
from __future__ import annotations

import torch


def reptile_delta(phi: torch.Tensor, mean_theta: torch.Tensor, meta_lr: float) -> torch.Tensor:
    """Delta = beta * (mean_i theta_i - phi): the Reptile / CTS meta-update of phi."""
    return (mean_theta - phi).mul_(meta_lr)


def shift_(theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """theta_i <- theta_i + Delta for every row i (CTS's first-order trajectory shift)."""
    return theta.add_(delta)
