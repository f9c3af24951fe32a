"""Search spaces: the distribution of each key a method tunes, declared beside its config.

A method file passes ``search={"meta_lr": LogUniform(0.01, 1.0), "reset_every":
Choice(25, 50, 100, 200)}`` to ``@register_method``; keys are ``method.<key>``. Keys
every method shares (the inner optimizer, batch size, steps) are never tuned: each
method gets the same inner compute. A method without tuned keys (scratch) declares none.

:func:`draw` gives trial ``t`` of a method on a suite. It depends only on (suite, method,
trial), so every machine and every rerun draws the same configurations; trial 0 is the
method's default (no overrides).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Union

import numpy as np


@dataclass(frozen=True)
class LogUniform:
    """exp(uniform(log low, log high)), rounded to 2 significant digits (readable run configs)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform: need 0 < low < high, got [{self.low}, {self.high}]")

    def draw(self, rng: np.random.Generator) -> float:
        return float(f"{math.exp(rng.uniform(math.log(self.low), math.log(self.high))):.2g}")

    def __str__(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


class Choice:
    """One of ``values``, uniformly."""

    def __init__(self, *values: Any):
        if not values:
            raise ValueError("Choice: needs at least one value")
        self.values = values

    def draw(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def __str__(self) -> str:
        return f"choice {{{', '.join(map(str, self.values))}}}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and self.values == other.values

    def __hash__(self) -> int:
        return hash(self.values)


Distribution = Union[LogUniform, Choice]


def draw(space: dict[str, Distribution], suite: str, method: str, trial: int) -> dict[str, Any]:
    """Trial ``trial``'s values of the tuned keys ({} for trial 0: the method's default).

    Seeded by (suite, method, trial) alone; keys are drawn in sorted order, so adding a
    method or a trial never changes another's draws."""
    if trial < 0:
        raise ValueError(f"trial: must be >= 0, got {trial}")
    if trial == 0 or not space:
        return {}
    rng = np.random.default_rng([zlib.crc32(suite.encode()), zlib.crc32(method.encode()), trial])
    return {key: space[key].draw(rng) for key in sorted(space)}


def describe(space: dict[str, Distribution]) -> dict[str, str]:
    """``{"method.meta_lr": "log-uniform [0.01, 1]", ...}``: for selection files and reports."""
    return {f"method.{key}": str(dist) for key, dist in space.items()}
