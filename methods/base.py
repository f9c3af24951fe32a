"""What a method is: a typed config and a small policy over the population.

After every inner step the runner calls ``method.after_step(step, pop)`` (and, between
the learners' backward and their step, ``method.before_step(step, pop)``). The policy
decides whether to update phi (from the learners' bodies or from validation
gradients), shift the learners, or reset them. It never sees devices, processes or
files: :class:`benchmark.core.population.Population` offers the collective operations.

The schedule is written once, in :class:`MetaMethod`: every ``aggregate_every`` steps
``update`` phi, every ``reset_every`` steps reset. A meta-gradient method
(:class:`GradMethod`) supplies only ``meta_grad(step, pop)``; the others ``update``.

Adding a method is one file with ``@register_method`` plus one import line in
``methods/__init__.py``; the CLI, the sweeps and the tests find it in ``METHODS``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch

from benchmark.registry import Registry, require
from methods.search import Distribution

if TYPE_CHECKING:
    from benchmark.core.population import Population


@dataclass
class MethodConfig:
    """Every method's config has a name; :meth:`check` sees the whole run config."""

    name: str = "?"

    def check(self, cfg: Any) -> None:
        """Cross-key checks against the whole config (e.g. a named source task)."""


@dataclass
class MetaConfig(MethodConfig):
    """The keys shared by methods that meta-update phi from a population of learners."""

    meta_lr: float = 0.1  # beta
    reset_every: int = 100  # K: learners are reset to phi every K inner steps
    aggregate_every: int = 1  # phi is updated every this many inner steps
    hard_reset: bool = False  # also clear the inner optimizer state on reset

    def __post_init__(self) -> None:
        require(self.meta_lr >= 0, "method.meta_lr", f"must be >= 0, got {self.meta_lr}")
        require(self.reset_every > 0, "method.reset_every", f"must be > 0, got {self.reset_every}")
        require(self.aggregate_every > 0, "method.aggregate_every", f"must be > 0, got {self.aggregate_every}")
        require(
            self.aggregate_every <= self.reset_every,
            "method.aggregate_every",
            f"must be <= method.reset_every ({self.reset_every}), got {self.aggregate_every}",
        )


@dataclass
class MetaOptConfig(MetaConfig):
    """Methods that step phi with a meta-optimizer (SGD, as the authors, or Adam)."""

    meta_optimizer: str = "sgd"  # sgd | adam

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.meta_optimizer in ("sgd", "adam"), "method.meta_optimizer",
                f"must be one of sgd, adam, got {self.meta_optimizer!r}")


@dataclass
class GradConfig(MetaOptConfig):
    """... from gradients on validation batches drawn from a fixed split of each source's
    training set."""

    val_fraction: float = 0.25  # the authors' 75/25 split

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.val_fraction < 1, "method.val_fraction", f"must be in (0, 1), got {self.val_fraction}")


class Method:
    """Base policy. Subclasses override :meth:`after_step` (or, through :class:`MetaMethod`, the
    schedule's hooks) and, if stateful, the state dicts."""

    #: False for methods that only meta-test phi_0 (scratch).
    meta_trains: bool = True
    #: True when the policy asks for validation gradients (the runner then splits the data).
    needs_val: bool = False

    def __init__(self, cfg: MethodConfig):
        self.cfg = cfg

    def setup(self, pop: "Population") -> None:
        """Called once the population exists."""

    def before_step(self, step: int, pop: "Population") -> None:
        """Called after every learner's backward and before the inner step: ``pop.mean_grad()`` is
        the mean of this step's training gradients (FOMAML++ steps phi with it). Most methods pass."""

    def after_step(self, step: int, pop: "Population") -> None:
        raise NotImplementedError

    def sources(self, suite: Any) -> list[str]:
        """The tasks this method trains on, given the suite config (its sources, unless overridden)."""
        return list(suite.sources)

    def steps(self, steps: int, n_sources: int) -> int:
        """Inner steps per learner, given ``train.steps`` and the suite's source count."""
        return steps

    @classmethod
    def first_update(cls, cfg: MethodConfig) -> int | None:
        """The first inner step at which the policy changes phi; None: never (scratch, by design).
        The schedule is the base's: a method with ``aggregate_every`` (``MetaConfig``) updates phi
        at its multiples, every other meta-training method at every step. A run whose last step
        comes before it is refused (``benchmark.config.validate``): phi would stay phi_0, silently.
        A method with another schedule overrides this."""
        if not cls.meta_trains:
            return None
        return cfg.aggregate_every if isinstance(cfg, MetaConfig) else 1

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class MetaMethod(Method):
    """The schedule of every method with a ``MetaConfig``: after each inner step, :meth:`follow`; every
    ``aggregate_every`` steps, :meth:`update` phi; every ``reset_every`` steps, reset the learners to
    phi (hard with ``hard_reset``), then :meth:`after_reset`. A policy that steps phi with this
    step's training gradients (``update_before_step``) updates just before the inner step instead."""

    update_before_step = False

    def before_step(self, step: int, pop: "Population") -> None:
        if self.update_before_step and step % self.cfg.aggregate_every == 0:
            self.update(step, pop)

    def after_step(self, step: int, pop: "Population") -> None:
        self.follow(step, pop)
        if not self.update_before_step and step % self.cfg.aggregate_every == 0:
            self.update(step, pop)
        if step % self.cfg.reset_every == 0:
            pop.reset(hard=self.cfg.hard_reset)
            self.after_reset(pop)

    def follow(self, step: int, pop: "Population") -> None:
        """Every step, before any update (Leap sums its path here, ANIL holds the bodies)."""

    def update(self, step: int, pop: "Population") -> None:
        """Move phi (and, for a shifting policy, the learners)."""
        raise NotImplementedError

    def after_reset(self, pop: "Population") -> None:
        """Right after the learners were reset to phi."""


class GradMethod(MetaMethod):
    """A method whose update is one step of a meta-optimizer over phi (``MetaOptConfig``) on the
    gradient its :meth:`meta_grad` returns; the optimizer's state is checkpointed. It takes
    validation batches unless it sets ``needs_val`` False."""

    needs_val = True

    def setup(self, pop: "Population") -> None:
        self.opt = meta_optimizer(self.cfg.meta_optimizer, pop.phi, self.cfg.meta_lr)

    def update(self, step: int, pop: "Population") -> None:
        pop.phi.grad = self.meta_grad(step, pop)
        self.opt.step()

    def meta_grad(self, step: int, pop: "Population") -> torch.Tensor:
        """The meta-gradient for phi at this step, averaged over every task of the run."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])


@dataclass(frozen=True)
class MethodEntry:
    name: str
    display: str  # the name tables and plots show
    config: type[MethodConfig]
    build: Callable[[MethodConfig], Method]
    search: dict[str, Distribution]  # what benchmark.tune draws, per key of the config ({}: nothing tuned)


METHODS: Registry[MethodEntry] = Registry("method")


def register_method(name: str, *, display: str, config: type[MethodConfig],
                    search: dict[str, Distribution] | None = None) -> Callable[[type], type]:
    """``search``: the distribution of each tuned key (see ``methods.search``); each must be a key of ``config``."""
    search = dict(search or {})
    fields = {f.name for f in dataclasses.fields(config)}
    for key in search:
        if key not in fields:
            raise ValueError(f"method {name!r}: search key {key!r} is not a key of {config.__name__}")

    def wrap(cls: type) -> type:
        METHODS.add(name, MethodEntry(name=name, display=display, config=config, build=cls, search=search))
        return cls

    return wrap


def display_name(name: str) -> str:
    return METHODS.get(name).display if name in METHODS else name


def meta_optimizer(kind: str, phi: torch.Tensor, lr: float) -> torch.optim.Optimizer:
    """A meta-optimizer over the flat phi (kept as a leaf tensor whose .grad we set)."""
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
    require(kind in opt, "method.meta_optimizer", f"must be one of {', '.join(opt)}, got {kind!r}")
    return opt[kind]([phi], lr=lr)
