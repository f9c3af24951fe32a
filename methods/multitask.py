"""Multi-task learning: one shared body with per-task heads, trained jointly.

Each inner step the shared body moves by SGD on the mean over tasks of the body
gradients (the heads by their own). It runs on the same population as every other
method: all learners start a step from the same body, take their own SGD step, and the
bodies and their momentum buffers are then averaged. Because SGD with momentum and
L2 weight decay is linear in the gradient, the average of the T steps is exactly one
step on the mean gradient, so this is the K = 1 limit of Reptile with beta = 1 (plus
momentum averaging). phi is the shared body. No meta-learning keys apply.

What matches the authors' code, line by line: ``docs/fidelity.md``, section Multi-task.
"""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import Method, MethodConfig, register_method


@dataclass
class MultiTaskConfig(MethodConfig):
    name: str = "multitask"


@register_method("multitask", display="Multi-task", config=MultiTaskConfig)
class MultiTask(Method):
    def after_step(self, step, pop):
        pop.average()
