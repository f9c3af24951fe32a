"""Search spaces: the distribution of each key a method tunes, declared beside its config.

A method file passes ``search={"meta_lr": LogUniform(1e-3, 3.0, why="..."), "reset_every":
Resets()}`` to ``@register_method``; keys are ``method.<key>``. Keys every method shares (the
inner optimizer, batch size, steps) are never tuned: each method gets the same inner
compute. A method without tuned keys (scratch) declares none.

:func:`draws` gives a tune's trials: the first points of a scrambled Sobol sequence over the
space (one dimension per key, in sorted key order), mapped to log-uniform and choice axes,
a point that repeats an earlier configuration skipped. The sequence is seeded by a key the
tune derives from the suite, the method and every setting that changes what the tune
measures (``benchmark.tune.experiment``), so a tune at another horizon draws fresh
configurations and every machine draws the same ones. A reset period (:class:`Resets`) is
a ladder of K values capped by the horizon, resolved by :func:`resolve` before drawing.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
from scipy.stats import qmc

EDGE = 0.1  # a continuous value in the outer 10% of its log-range is on the edge


@dataclass(frozen=True)
class LogUniform:
    """exp(uniform(log low, log high)), rounded to 2 significant digits (readable run configs).
    ``why``: one line on why the range is what it is (shown in selection files)."""

    low: float
    high: float
    why: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform: need 0 < low < high, got [{self.low}, {self.high}]")

    def value(self, u: float) -> float:
        """The value at quantile ``u`` in [0, 1)."""
        return float(f"{math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))):.2g}")

    def position(self, value: float) -> float:
        """Where ``value`` lies in the log-range: 0 at low, 1 at high."""
        return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))

    def edge(self, value: float) -> str | None:
        """A reason, if ``value`` lies in the outer EDGE of the log-range."""
        p = self.position(value)
        if p < EDGE:
            return f"in the bottom {EDGE:.0%} of {self}"
        if p > 1 - EDGE:
            return f"in the top {EDGE:.0%} of {self}"
        return None

    def __str__(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


class Choice:
    """One of ``values``, uniformly."""

    def __init__(self, *values: Any):
        if not values:
            raise ValueError("Choice: needs at least one value")
        self.values = values

    def value(self, u: float) -> Any:
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def edge(self, value: Any) -> str | None:
        """A reason, if ``value`` is the smallest or largest of three or more ordered values."""
        if len(self.values) < 3 or not all(isinstance(v, (int, float)) for v in self.values):
            return None
        if value == min(self.values):
            return f"the smallest of {self}"
        if value == max(self.values):
            return f"the largest of {self}"
        return None

    def __str__(self) -> str:
        return f"choice {{{', '.join(map(str, self.values))}}}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and self.values == other.values

    def __hash__(self) -> int:
        return hash(self.values)


@dataclass(frozen=True)
class Resets:
    """A reset period K: the ladder's values up to half the horizon (at least two resets per
    task), so a tune at 400 steps draws from {10, ..., 200} and at 2,000 up to 1,000; a
    horizon under twice the smallest rung gets K = steps // 2. The cap is structural: a K past
    half the horizon leaves Reptile one meta-update per task, at the very end, so a selection
    at the cap is flagged as an edge but the ladder is not widened past it."""

    ladder: tuple[int, ...] = (10, 25, 50, 100, 200, 500, 1000)
    why: str = ""

    def at(self, steps: int) -> Choice:
        return Choice(*([k for k in self.ladder if k <= steps // 2] or [max(1, steps // 2)]))

    def __str__(self) -> str:
        return f"choice {{{', '.join(map(str, self.ladder))}}} up to train.steps / 2"


Distribution = Union[LogUniform, Choice, Resets]


def resolve(space: dict[str, Distribution], steps: int) -> dict[str, LogUniform | Choice]:
    """The space at a horizon of ``steps`` inner steps: each :class:`Resets` as its choice."""
    return {k: d.at(steps) if isinstance(d, Resets) else d for k, d in space.items()}


def size(space: dict[str, LogUniform | Choice]) -> float:
    """How many distinct configurations the space holds (inf with a continuous axis)."""
    if any(isinstance(d, LogUniform) for d in space.values()):
        return math.inf
    return math.prod(len(d.values) for d in space.values())


def draws(space: dict[str, LogUniform | Choice], key: str, n: int, taken: list[dict] = ()) -> list[dict[str, Any]]:
    """``n`` distinct configurations: the first points of a scrambled Sobol sequence seeded by
    ``key``, skipping any that repeat an earlier draw or one of ``taken`` (e.g. the default).
    Raises ValueError, naming the space, when it holds fewer than ``n`` new configurations."""
    if n < 0:
        raise ValueError(f"trials: must be >= 0, got {n}")
    if not space or n == 0:  # nothing to tune: n empty configurations
        return [{} for _ in range(n)]
    if size(space) < n + len(taken):
        raise ValueError(f"the search space {describe(space)} holds {size(space):g} configurations, fewer than "
                         f"the {n + len(taken)} trials asked for")
    keys = sorted(space)
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    sobol = qmc.Sobol(len(keys), scramble=True, rng=np.random.default_rng(seed))
    seen = {tuple(sorted(t.items())) for t in taken}
    out: list[dict[str, Any]] = []
    for m in range(max(1, math.ceil(math.log2(n))), 20):  # the sequence's first 2^m points, m growing
        sobol.reset()
        out, chosen = [], set(seen)
        for point in sobol.random_base2(m):
            values = {k: space[k].value(float(u)) for k, u in zip(keys, point)}
            if tuple(sorted(values.items())) not in chosen:
                chosen.add(tuple(sorted(values.items())))
                out.append(values)
                if len(out) == n:
                    return out
    raise ValueError(f"the search space {describe(space)} gave {len(out)} distinct configurations of {n}")


def edges(space: dict[str, LogUniform | Choice], values: dict[str, Any]) -> list[str]:
    """``method.<key>=<value> <reason>`` for each value on an edge of its (resolved) range."""
    out = []
    for k in sorted(space):
        reason = space[k].edge(values[k]) if k in values else None
        if reason:
            out.append(f"method.{k}={values[k]} {reason}")
    return out


def describe(space: dict[str, Distribution]) -> dict[str, str]:
    """``{"method.meta_lr": "log-uniform [0.001, 3]", ...}``: for selection files and reports."""
    return {f"method.{key}": str(dist) for key, dist in sorted(space.items())}


def reasons(space: dict[str, Distribution]) -> dict[str, str]:
    """``{"method.meta_lr": why, ...}`` for the keys whose range carries a reason."""
    return {f"method.{k}": d.why for k, d in sorted(space.items()) if getattr(d, "why", "")}


# The shared ranges. One range for methods whose beta means the same thing, wide enough
# that no selection of the 400- or 2,000-step tunes of 2026-12-01 lies in its outer 10%.
# INTERPOLATION was [1e-3, 3] until the 400-step tune of 2026-12-05 selected Reptile's beta
# 1.8, in its top 10%: widened to 10 (beta > 1 steps past the learners' mean), and retuned.
INTERPOLATION = LogUniform(1e-3, 10.0, why=(
    "beta moves phi a fraction of the way to the learners' mean (CTS every step, Reptile and Leap every K), "
    "so good values differ by orders of magnitude between them; above 1 it steps past the mean, which "
    "Reptile chose at 400 steps (1.8): 4 decades"))
META_GRADIENT = LogUniform(3e-3, 10.0, why=(
    "an SGD step on a mean first-order meta-gradient, whose scale depends on the loss: 3.5 decades, "
    "covering FOMAML's 0.3 and ANIL's 2.8 of the 400-step tune well inside"))
