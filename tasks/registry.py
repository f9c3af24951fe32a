"""The task registry: every image-classification task a suite can name.

A task is a loader returning uint8 tensors in memory plus the facts the runner needs
(classes, channels, image size, augmentation). Loaders import heavy dependencies
lazily, so registering a task costs nothing until a run asks for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from benchmark.registry import Registry
from tasks.names import parse, scheme


@dataclass(frozen=True)
class Splits:
    """A task's data: ``x`` uint8 [N, C, H, W], ``y`` int64 [N] in [0, num_classes)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


@dataclass(frozen=True)
class TaskSpec:
    name: str
    num_classes: int
    channels: int
    image_size: int
    load: Callable[[Any], Splits]  # (DataConfig) -> Splits
    pad: int = 0  # random-crop padding in pixels; 0 disables the crop
    flip: bool = False  # random horizontal flip
    mean: float = 0.5  # normalization: (x / 255 - mean) / std, as in the paper
    std: float = 0.5


TASKS: Registry[TaskSpec] = Registry("task")


def register_task(name: str, **facts: Any) -> Callable[[Callable[[Any], Splits]], Callable[[Any], Splits]]:
    """Decorator on a loader ``load(data_cfg) -> Splits``; ``facts`` are TaskSpec fields."""

    def wrap(load: Callable[[Any], Splits]) -> Callable[[Any], Splits]:
        TASKS.add(name, TaskSpec(name=name, load=load, **facts))
        return load

    return wrap


@dataclass
class SuiteConfig:
    """A named set of source tasks (meta-training), target tasks (meta-testing, reported) and
    validation tasks (meta-tested like the targets, used only to select hyperparameters).

    A task is a registered name or a name with a scheme (``folder:<path>``, ``torchvision:<Name>``,
    see ``tasks.user``), which validation rewrites into a path-free name, recording the path in
    ``paths`` and its data's fingerprint in ``fingerprints``."""

    name: str = "?"  # "?": a suite file's name (benchmark.config fills it in)
    sources: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)  # never trained on, never reported as a result
    finetune_source: str = ""  # what the fine-tuning baseline pre-trains on (method=finetune)
    paths: dict[str, str] = field(default_factory=dict)  # folder task -> its folder (filled in by validation)
    fingerprints: dict[str, str] = field(default_factory=dict)  # scheme task -> its data's hash (ditto)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Every name known (or left to scheme resolution), none twice, each task in one role."""
        for key in ("sources", "targets", "validation"):
            names = getattr(self, key)
            if not names and key != "validation":
                raise ValueError(f"suite.{key}: must name at least one task")
            for name in names:
                self._known(name, f"suite.{key}")
            if len(set(names)) != len(names):
                raise ValueError(f"suite.{key}: a task is named twice: {names}")
        if self.finetune_source:
            self._known(self.finetune_source, "suite.finetune_source")
        # A task has one role. Fine-tuning's source may be a meta-training source (both train on it).
        roles = [("sources", self.sources), ("targets", self.targets), ("validation", self.validation),
                 ("finetune_source", [self.finetune_source] if self.finetune_source else [])]
        for i, (key_a, names_a) in enumerate(roles):
            for key_b, names_b in roles[i + 1:]:
                if {key_a, key_b} == {"sources", "finetune_source"}:
                    continue
                for name in [n for n in names_a if n in names_b]:
                    raise ValueError(f"suite: task {name!r} is named in two roles, suite.{key_a} and suite.{key_b}; "
                                     "a task is trained on, reported, or used for selection: only one of these")

    @staticmethod
    def _known(name: str, key: str) -> None:
        if scheme(name) is not None:
            parse(name, key)  # the scheme and the size; the data is checked at validation
        elif name not in TASKS:
            raise ValueError(f"{key}: unknown task {name!r}; valid task names: {', '.join(TASKS)}, "
                             "or folder:<path>, torchvision:<Name>")

    def check_channels(self, channels: int | None, trained: list[str] | None = None) -> None:
        """One body needs one input format: the channel counts of the tasks a run loads (those it
        trains on, ``trained``: by default the sources and the fine-tuning source; the targets and
        validation tasks) agree, or ``data.channels`` converts them. The error names each task with
        its role and channel count."""
        trained = [*self.sources, *([self.finetune_source] if self.finetune_source else [])] if trained is None \
            else trained
        roles = {n: "suite.sources" if n in self.sources else "suite.finetune_source" if n == self.finetune_source
                 else "method.source" for n in trained}
        roles.update({n: "suite.targets" for n in self.targets} | {n: "suite.validation" for n in self.validation})
        counts = {n: TASKS.get(n).channels for n in roles}
        if len(set(counts.values())) > 1 and not channels:
            kinds = {1: "grey (1 channel)", 3: "RGB (3 channels)"}
            groups = "; ".join(f"{kinds.get(c, f'{c} channels')}: " + ", ".join(f"{n} ({roles[n]})" for n in counts
                                                                            if counts[n] == c)
                               for c in sorted(set(counts.values())))
            raise ValueError(f"suite: tasks mix channel counts: {groups}; one body needs one input format "
                             "(data.channels=1 or 3 converts them, or leave those tasks out)")


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    validation: tuple[str, ...]
    finetune_source: str
    defaults: dict  # overrides of other config groups for this suite, e.g. {"train": {"steps": 200000}}


SUITES: Registry[SuiteEntry] = Registry("suite")


def register_suite(name: str, sources: list[str], targets: list[str], finetune_source: str,
                   validation: list[str] = (), **defaults: dict) -> SuiteEntry:
    """A suite: its sources, targets, validation tasks, the task fine-tuning pre-trains on, and
    its defaults for other config groups (e.g. ``train={"steps": 200000}``, ``model="resnet20"``)."""
    return SUITES.add(name, SuiteEntry(name, tuple(sources), tuple(targets), tuple(validation), finetune_source,
                                       defaults))
