"""Seeds and generators that depend only on what they are named after.

Every random draw of a run (permutations, augmentation, heads, splits, episodes) comes from a
generator seeded by a tuple such as ``(seed, task, "epoch", epoch)``: the same in every process,
Python run and process layout, so methods see identical data and a resumed run needs only the step.
"""
from __future__ import annotations

import hashlib

import torch


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, the same in every process and Python run."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(*parts: object, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stable_seed(*parts))
    return g
