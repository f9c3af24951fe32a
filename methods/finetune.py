"""Fine-tuning: pre-train the body on one task; phi is the pre-trained body.

The paper's baseline pre-trains on all of Tiny ImageNet, 200 classes (the authors'
``train_tgt.py`` loads a ``scratch_tiny_imagenet`` model and drops its ``fc`` and
BatchNorm statistics), and for ResNet-18 uses ImageNet. Here the task is ``method.source``
or, by default, the suite's ``finetune_source``: ``tiny_imagenet`` (both halves as one
200-class task) on ``suite=paper``; on ``glyphs``, its largest and most varied source
(``glyphs_math``, 40 classes). It gets the same budget of inner gradient steps as the
population methods, ``train.steps`` x number of sources, all on the one task
(``method.steps`` overrides), with the same inner SGD.

Deviation from the authors' code: their pre-training is ``train_tgt.py`` itself, from scratch on
all of Tiny ImageNet for 50K steps (the checkpoint ``checkpoints/scratch_tiny_imagenet_50k/tgt/
model_50000.pth``, ``train_tgt.py`` line 115, is that script's output: suffix ``tgt``, line 136;
``model_<steps>``, line 144): Adam 1e-3, L2 5e-4, x0.3 at 40/70/90% of the steps, batch 128, at an
image size the name does not record (the flag's default is 32 px, line 29). Here the pre-training
is the runner's inner SGD (``train.*``: lr, momentum, weight decay, constant lr) for ``train.steps``
x number of sources steps, on ``tiny_imagenet`` at 64 px on ``suite=paper``. The same as theirs:
the pre-trained body is transferred without its BatchNorm running statistics and without its head
(line 116). Their ResNet-18 ImageNet load (lines 110-113) filters on ``requires_grad``, which is
False for every loaded tensor, so it loads nothing; here ResNet-18 has no ImageNet option.
"""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import Method, MethodConfig, register_method, require


@dataclass
class FinetuneConfig(MethodConfig):
    name: str = "finetune"
    source: str = ""  # empty: the suite's finetune_source
    steps: int = 0  # total inner steps; 0: train.steps x number of sources

    def __post_init__(self) -> None:
        require(self.steps >= 0, "method.steps", f"must be >= 0, got {self.steps}")

    def check(self, cfg) -> None:
        """The task is named and is no target (``benchmark.config.validate`` checks that it is registered)."""
        source = self.source or cfg.suite.finetune_source
        require(bool(source), "method.source", "empty, and the suite names no finetune_source: name the task "
                                               "to pre-train on")
        require(source not in cfg.suite.targets, "method.source",
                f"{source!r} is also a target (suite.targets): a task is pre-trained on or meta-tested, never both")


@register_method("finetune", display="Fine-tuning", config=FinetuneConfig)
class Finetune(Method):
    def sources(self, suite):
        return [self.cfg.source or suite.finetune_source]

    def steps(self, steps, n_sources):
        return self.cfg.steps or steps * n_sources

    def after_step(self, step, pop):
        # phi follows the body every step (one copy of P floats), so the phi snapshots
        # taken for metatest.at_steps are the body pre-trained that far.
        pop.phi.copy_(pop.mean_theta())
