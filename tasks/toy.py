"""``toy``: tiny random-prototype tasks for tests and smoke runs (milliseconds to build).

Each class is a random smooth 12x12 prototype; a sample is its prototype, randomly
shifted by up to 2 pixels, plus noise. Tasks differ in class count and prototypes.
Sources ``toy_a``..``toy_d``, targets ``toy_e`` and ``toy_f``.
"""
from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from tasks.registry import Splits, register_suite, register_task

SIZE = 12
CLASSES = {"toy_a": 3, "toy_b": 4, "toy_c": 5, "toy_d": 3, "toy_e": 4, "toy_f": 3, "toy_v": 4}


def _gen(*parts: object) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:7], "little"))
    return g


def make_toy(name: str, classes: int, train_per_class: int = 24, test_per_class: int = 16) -> Splits:
    g = _gen("toy", name)
    protos = F.interpolate(torch.rand(classes, 1, 4, 4, generator=g), size=SIZE, mode="bilinear")

    def sample(per_class: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        gs = _gen("toy", name, split)
        y = torch.arange(classes).repeat_interleave(per_class)
        x = protos[y]
        shifts = torch.randint(-2, 3, (len(y), 2), generator=gs)
        x = torch.stack([torch.roll(img, tuple(s.tolist()), dims=(1, 2)) for img, s in zip(x, shifts)])
        x = (x + 0.25 * torch.randn(x.shape, generator=gs)).clamp(0, 1)
        return (x * 255).round().to(torch.uint8), y

    return Splits(*sample(train_per_class, "train"), *sample(test_per_class, "test"))


for _name, _classes in CLASSES.items():
    register_task(_name, num_classes=_classes, channels=1, image_size=SIZE)(
        lambda data_cfg, _n=_name, _c=_classes: make_toy(_n, _c)
    )

register_suite("toy", sources=["toy_a", "toy_b", "toy_c", "toy_d"], targets=["toy_e", "toy_f"], validation=["toy_v"],
               finetune_source="toy_c",
               train={"steps": 20, "batch_size": 8, "log_every": 5}, metatest={"steps": 10, "batch_size": 8})
