"""The typed config: every key, its type, its default and its check.

Hydra composes ``conf/config.yaml`` over the dataclass :class:`Config`; the ``method``,
``suite`` and ``model`` groups are generated from the registries, so a new method,
suite or model is a CLI choice as soon as it is registered. :func:`validate` turns the
composed config into dataclasses, which runs every ``__post_init__`` check, before any
compute; an error names the key.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from benchmark.logs import LEVELS
from benchmark.models import MODELS
from benchmark.registry import require
import methods  # noqa: F401  (registers methods)
from methods.base import METHODS
import tasks  # noqa: F401  (registers tasks and suites)
from tasks.registry import SUITES, TASKS, SuiteConfig
from tasks.user import resolve_suite


@dataclass
class TrainConfig:
    steps: int = 400  # inner steps per task
    batch_size: int = 32
    inner_lr: float = 0.05  # alpha
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    log_every: int = 50

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "inner_lr", "log_every"):
            require(getattr(self, key) > 0, f"train.{key}", f"must be > 0, got {getattr(self, key)}")
        require(0 <= self.momentum < 1, "train.momentum", f"must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, "train.weight_decay", f"must be >= 0, got {self.weight_decay}")


@dataclass
class MetaTestConfig:
    """The paper's target recipe, scaled down: Adam, L2 weight decay, step schedule."""

    steps: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 5e-4
    milestones: list[float] = field(default_factory=lambda: [0.4, 0.7, 0.9])  # fractions of steps
    gamma: float = 0.3
    at_steps: list[int] = field(default_factory=list)  # also meta-test phi saved at these steps (on the targets)
    validation_at_steps: bool = False  # ... and on the validation tasks too (the final phi always is)
    # Limited data: also meta-test the final phi on the targets with only this many training
    # images per class (a seeded, stratified subset; the test split is unchanged).
    train_sizes: list[int] = field(default_factory=list)
    # Few-shot episodes (benchmark/episodes.py): this many N-way K-shot episodes per target and
    # shot count, drawn from the target's test split; a fresh head is fitted on each support set
    # (episode_steps of full-batch Adam at episode_lr), the body frozen or fine-tuned too.
    episodes: int = 0
    episode_ways: int = 5
    episode_shots: list[int] = field(default_factory=lambda: [1, 5])
    episode_queries: int = 15  # per class
    episode_steps: int = 100
    episode_lr: float = 0.01
    episode_body: str = "frozen"  # frozen (a linear probe of phi's features) | finetune

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "lr"):
            require(getattr(self, key) > 0, f"metatest.{key}", f"must be > 0, got {getattr(self, key)}")
        require(all(0 < m < 1 for m in self.milestones), "metatest.milestones", "must lie in (0, 1)")
        require(all(s > 0 for s in self.at_steps), "metatest.at_steps", "must be positive steps")
        require(all(n > 0 for n in self.train_sizes), "metatest.train_sizes",
                f"must be positive images per class, got {list(self.train_sizes)}")
        for key in ("at_steps", "train_sizes", "episode_shots"):  # each would be meta-tested twice
            values = list(getattr(self, key))
            require(len(set(values)) == len(values), f"metatest.{key}", f"a value is named twice: {values}")
        require(self.episodes >= 0, "metatest.episodes", f"must be >= 0, got {self.episodes}")
        require(self.episode_ways >= 2, "metatest.episode_ways", f"must be >= 2, got {self.episode_ways}")
        require(len(self.episode_shots) > 0 and all(k > 0 for k in self.episode_shots), "metatest.episode_shots",
                f"must be positive images per class, got {list(self.episode_shots)}")
        for key in ("episode_queries", "episode_steps", "episode_lr"):
            require(getattr(self, key) > 0, f"metatest.{key}", f"must be > 0, got {getattr(self, key)}")
        require(self.episode_body in ("frozen", "finetune"), "metatest.episode_body",
                f"must be frozen or finetune, got {self.episode_body!r}")


@dataclass
class DataConfig:
    root: str = "data"  # where real datasets live
    cache_dir: str = "${oc.env:LSML_CACHE,'~/.cache/lsml-bench'}"  # rendered / decoded uint8 tensors
    download: bool = False
    # Tasks named folder:<path> or torchvision:<Name> (tasks.user); registered tasks keep their own.
    image_size: int = 32  # pixels, unless the name ends in @<px>
    test_fraction: float = 0.2  # of each class, held out when a folder has no test/
    pad: Optional[int] = None  # random-crop padding; None: 4 at 32 px, 8 otherwise (the real datasets' rule)
    flip: Optional[bool] = None  # random horizontal flip; None: on (as the real datasets)
    # Every task of the run, registered ones too: convert to 1 (grey, ITU-R 601 luma) or 3 channels.
    channels: Optional[int] = None

    def __post_init__(self) -> None:
        require(self.image_size > 0, "data.image_size", f"must be > 0, got {self.image_size}")
        require(0 < self.test_fraction < 1, "data.test_fraction", f"must lie in (0, 1), got {self.test_fraction}")
        require(self.pad is None or self.pad >= 0, "data.pad", f"must be >= 0, got {self.pad}")
        require(self.channels in (None, 1, 3), "data.channels", f"must be null, 1 or 3, got {self.channels}")


@dataclass
class RunnerConfig:
    device: str = "auto"  # auto: cuda if available, else cpu
    world_size: int = 1
    threads: int = 0  # torch threads per process; 0: cores / world_size
    timeout: float = 600.0  # seconds a collective may wait for a peer before failing
    compile: bool = False  # torch.compile the inner step's body forward (benchmark/core/compiled.py); not in the run id

    def __post_init__(self) -> None:
        require(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "runner.device",
                f"must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        require(self.world_size > 0, "runner.world_size", f"must be > 0, got {self.world_size}")
        require(self.timeout > 0, "runner.timeout", f"must be > 0, got {self.timeout}")
        require(self.threads >= 0, "runner.threads", f"must be >= 0, got {self.threads}")


@dataclass
class CheckpointConfig:
    phi_every: int = 0  # also save phi every this many steps (0: only the end)
    every: int = 0  # save a resumable checkpoint every this many steps (0: only on SIGTERM/SIGUSR2)

    def __post_init__(self) -> None:
        require(self.phi_every >= 0, "checkpoint.phi_every", f"must be >= 0, got {self.phi_every}")
        require(self.every >= 0, "checkpoint.every", f"must be >= 0, got {self.every}")


@dataclass
class LogConfig:
    level: str = "INFO"  # messages on stderr: DEBUG, INFO, WARNING or ERROR
    tensorboard: bool = False  # scalars as TensorBoard event files in <run>/tb/ (rank 0 writes)

    def __post_init__(self) -> None:
        require(self.level.upper() in LEVELS, "log.level", f"must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if self.tensorboard:  # before any folder is written, not at the first scalar
            import importlib.util

            require(importlib.util.find_spec("tensorboard") is not None, "log.tensorboard",
                    "needs the tensorboard package (pip install tensorboard)")


@dataclass
class Config:
    method: Any = MISSING
    suite: SuiteConfig = MISSING
    model: Any = MISSING
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    metatest: MetaTestConfig = field(default_factory=MetaTestConfig)
    data: DataConfig = field(default_factory=DataConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    results_dir: str = "results"


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for name in METHODS:
        cs.store(group="method", name=name, node=METHODS.get(name).config)
    for name in MODELS:
        cs.store(group="model", name=name, node=MODELS.get(name).config)
    for name in SUITES:
        s = SUITES.get(name)
        defaults = dict(s.defaults)
        model = defaults.pop("model", None)  # a suite may choose its model (the paper: ResNet-20)
        node = {"suite": {"name": name, "sources": list(s.sources), "targets": list(s.targets),
                          "validation": list(s.validation), "finetune_source": s.finetune_source}, **defaults}
        if model:
            node = {"defaults": ["_self_", {"override /model": model}], **node}
        cs.store(group="suite", name=name, node=node, package="_global_")


register_configs()


def validate(cfg: DictConfig, moves: bool = True) -> Config:
    """Run every check; raise ValueError naming the bad key. No compute happens before this.

    ``cfg`` may hold Hydra's own node (``compose(..., return_hydra_config=True)``): a suite
    read from a suite file that sets no ``name`` is then named after the file."""
    cfg = _named_suite(cfg)
    unknown_keys(cfg)
    try:
        typed = OmegaConf.to_object(cfg)
    except Exception as e:  # OmegaConf wraps __post_init__ errors; keep their message
        cause = e.__cause__ or e.__context__ or e
        msg = str(cause).splitlines()[0] if isinstance(cause, ValueError) else str(e)
        raise ValueError(msg) from None
    resolve_suite(typed.suite, typed.data, typed.method)  # folder: and torchvision: tasks, path-free
    typed.suite.check()  # again, on the resolved names
    name_own_suite(typed.suite)
    require(typed.method.name in METHODS, "method.name", f"unknown; valid: {', '.join(METHODS)}")
    # The tasks the run loads: a suite's finetune_source only counts for a method that trains on it.
    method = METHODS.get(typed.method.name).build(typed.method)
    loaded = method.sources(typed.suite)
    for name in loaded:  # the suite's tasks are checked; a method may add one (fine-tuning's method.source)
        require(name in TASKS, "method.source", f"unknown task {name!r}; valid: {', '.join(TASKS)}")
    typed.suite.check_channels(typed.data.channels, loaded)
    typed.method.check(typed)
    steps = method.steps(typed.train.steps, len(typed.suite.sources))
    if moves:
        check_phi_moves(typed, steps)
    late = [s for s in typed.metatest.at_steps if s > steps]
    require(not late, "metatest.at_steps", f"{late} lie beyond the run's last step, {steps} "
            f"(train.steps{' x sources, for ' + typed.method.name if steps != typed.train.steps else ''})")
    check_results_dir(typed.results_dir)
    check_values(typed)
    return typed


SEED_MAX = 2**63 - 1  # an int64: what torch's generators and the result tables (pandas) hold


def check_values(typed: Config) -> None:
    """What the per-group checks leave open: a seed out of range, a non-finite number under any
    key (``method.meta_lr=inf`` is no step size), a cache folder that cannot be written."""
    require(0 <= typed.seed <= SEED_MAX, "seed", f"must be an integer in [0, 2**63 - 1], got {typed.seed}")
    for key, value in _numbers(typed, ""):
        require(math.isfinite(value), key, f"must be a finite number, got {value}")
    check_writable("data.cache_dir", typed.data.cache_dir)


def _numbers(node: Any, prefix: str) -> Iterator[tuple[str, float]]:
    """(dotted key, value) of every float in a typed config, lists included."""
    if is_dataclass(node):
        for f in fields(node):
            yield from _numbers(getattr(node, f.name), f"{prefix}.{f.name}" if prefix else f.name)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _numbers(value, prefix)
    elif isinstance(node, float):
        yield prefix, node
def name_own_suite(suite: SuiteConfig) -> None:
    """A run that names tasks of its own (``folder:``, ``torchvision:``) but no suite keeps a registered
    suite's name (``glyphs``, the default), under which its results would be filed and printed: such a
    suite is named after its own targets instead (``folder:birds@64`` -> ``birds``), or its own other
    tasks if no target is one. ``suite.name=...`` names it explicitly."""
    own = [n for n in suite.targets if ":" in n] or [n for n in [*suite.sources, *suite.validation] if ":" in n]
    if own and suite.name in SUITES:
        short = (re.split(r"[@?]", n.split(":", 1)[1])[0] for n in own)
        suite.name = "+".join(dict.fromkeys(re.sub(r"[^\w.-]", "_", s) for s in short))


def check_phi_moves(cfg: Config, steps: int) -> None:
    """A run whose method would first update phi after its last step is an error naming the keys:
    it would meta-test phi_0 as if it had been meta-trained (e.g. Reptile, which updates phi
    every K steps, with K > train.steps)."""
    first = METHODS.get(cfg.method.name).build.first_update(cfg.method)
    if first is None or first <= steps:
        return
    every = cfg.method.aggregate_every
    follows = every == getattr(cfg.method, "reset_every", None)
    key = "method.reset_every" if follows else "method.aggregate_every"
    raise ValueError(f"{key}: {cfg.method.name} first updates phi at inner step {first} (method.aggregate_every = "
                     f"{every}{', as method.reset_every' if follows else ''}), after the run's last, "
                     f"train.steps = {steps}: phi would never move; make it at most {steps}, or raise train.steps")


def _named_suite(cfg: DictConfig) -> DictConfig:
    """Drop Hydra's node; name a suite file's suite after the file when it sets no name."""
    from hydra.core.hydra_config import HydraConfig

    choice = None
    if "hydra" in cfg:
        choice = OmegaConf.select(cfg, "hydra.runtime.choices.suite")
        cfg = cfg.copy()
        with open_dict(cfg):
            del cfg["hydra"]
    elif HydraConfig.initialized():  # inside @hydra.main
        choice = HydraConfig.get().runtime.choices.get("suite")
    if choice and OmegaConf.select(cfg, "suite.name") == "?":
        cfg = cfg.copy()
        cfg.suite.name = Path(choice).name
    return cfg


def check_results_dir(path: str) -> None:
    """``results_dir`` is a writable folder, or one that can be created (nothing is created here),
    and so are the folders a run or sweep writes there (``.locks``, ``logs``)."""
    require(str(path).strip() != "", "results_dir", "is empty; name a folder (e.g. results_dir=results)")
    check_writable("results_dir", path)
    for name in (".locks", "logs"):
        inside = Path(path).expanduser().absolute() / name
        require(not inside.exists() or inside.is_dir(), "results_dir", f"{inside} exists and is not a directory")


def check_writable(key: str, path: str) -> None:
    """``path`` is a writable folder, or one that can be created; a ValueError naming ``key`` if not
    (a read-only file system included, whoever runs: os.access reports EROFS even to root)."""
    require(str(path).strip() != "", key, "is empty; name a folder")
    here = Path(path).expanduser().absolute()
    require(not here.exists() or here.is_dir(), key, f"{path} exists and is not a directory")
    while not here.exists():
        here = here.parent
    require(here.is_dir(), key, f"cannot be created: {here} is not a directory")
    require(os.access(here, os.W_OK | os.X_OK), key,
            f"cannot be written: {here} is read-only or not writable by this user")


def unknown_key(key: str, schema: type | None) -> str:
    parent = key.rpartition(".")[0]
    if schema is None:
        return f"{key}: unknown key"
    valid = ", ".join(f.name for f in dataclasses.fields(schema))
    return f"{key}: unknown key; valid keys{' of ' + parent if parent else ''}: {valid}"


def unknown_keys(cfg: DictConfig) -> None:
    """A key added with ``+key=value`` that no schema declares is an error naming it: OmegaConf
    would carry it along, and nothing would read it."""
    def walk(node: DictConfig, prefix: str) -> None:
        schema = OmegaConf.get_type(node)
        declared = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
        for key in node.keys():
            if declared is not None and key not in declared:
                raise ValueError(unknown_key(f"{prefix}{key}", schema))
            child = node._get_node(key)
            if isinstance(child, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(child)):
                walk(child, f"{prefix}{key}.")

    walk(cfg, "")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def from_container(config: dict) -> Config:
    """Rebuild a typed, validated config from a plain dict (a run folder's config.yaml,
    or what a spawned worker receives), with each group's own schema."""
    config = dict(config)
    method = OmegaConf.merge(OmegaConf.structured(METHODS.get(config["method"]["name"]).config), config.pop("method"))
    model = OmegaConf.merge(OmegaConf.structured(MODELS.get(config["model"]["name"]).config), config.pop("model"))
    cfg = OmegaConf.merge(OmegaConf.structured(Config), config)
    cfg.method, cfg.model = method, model
    return validate(cfg)
