"""Fine-tuning: pre-train the body on one source task; phi is the pre-trained body.

The paper pre-trains on Tiny ImageNet (or uses ImageNet for ResNet-18). Here the
source is ``method.source``, by default the source with the most training images.
By default it gets the same budget of inner gradient steps as the population methods,
``train.steps`` x number of sources, all on the one task (``method.steps`` overrides).
"""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import Method, MethodConfig, register_method, require


@dataclass
class FinetuneConfig(MethodConfig):
    name: str = "finetune"
    source: str = ""  # empty: the source with the most training images
    steps: int = 0  # total inner steps; 0: train.steps x number of sources

    def __post_init__(self) -> None:
        require(self.steps >= 0, "method.steps", f"must be >= 0, got {self.steps}")

    def check(self, cfg) -> None:
        require(not self.source or self.source in cfg.suite.sources, "method.source",
                f"must be one of the suite's sources ({', '.join(cfg.suite.sources)}), got {self.source!r}")


@register_method("finetune", display="Fine-tuning", config=FinetuneConfig)
class Finetune(Method):
    def sources(self, sources, train_sizes):
        # max() keeps the first of equal sizes, so ties resolve by suite order
        return [self.cfg.source or max(sources, key=lambda n: train_sizes[n])]

    def steps(self, steps, n_sources):
        return self.cfg.steps or steps * n_sources

    def after_step(self, step, pop):
        # phi follows the body every step (one copy of P floats), so the phi snapshots
        # taken for metatest.at_steps are the body pre-trained that far.
        pop.phi.copy_(pop.mean_theta())
