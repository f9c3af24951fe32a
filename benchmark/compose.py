"""Hydra's composition of a run's config from ``key=value`` overrides, and its errors as one line
naming the key (``benchmark.config`` holds the schema and its checks)."""
from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import yaml
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

from benchmark import config
from benchmark.config import unknown_key, validate
from benchmark.models import MODELS
from methods.base import METHODS


def compose_config(overrides: list[str], moves: bool = True) -> Config:
    """A run's validated config from ``key=value`` overrides, composed as the CLI does
    (``hydra.searchpath=[file://<dir>]`` among them adds a config directory, as ``--config-dir``).
    ``moves=False`` skips the check that phi moves, for a base that a tune draws the keys of."""
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        return validate(compose_run(overrides), moves=moves)


def compose_run(overrides: list[str]) -> DictConfig:
    """Compose one run's config (inside an initialized Hydra), keeping Hydra's node for
    :func:`validate`; an unknown key in a suite file is a one-line ValueError naming it and the file."""
    try:
        return compose("config", overrides=overrides, return_hydra_config=True)
    except yaml.YAMLError as e:  # a config file (a suite file of --config-dir) that is not YAML
        raise ValueError(_yaml_message(e)) from None
    except ConfigCompositionException as e:
        text = str(e)
        where = re.match(r"In '(suite/[^']+)'", text)
        key = re.search(r"full_key: (suite\.\S+)", text)
        if where and not key and len(text.splitlines()) > 1:  # the file is not a mapping of suite keys
            raise ValueError(f"suite: the suite file {where.group(1)}.yaml{_found_in(overrides, where.group(1))} "
                             f"is not a mapping of {', '.join(SUITE_KEYS)} ({text.splitlines()[1].strip()})"
                             ) from None
        if not (where and key):
            raise
        raise ValueError(f"{key.group(1)}: unknown key in the suite file {where.group(1)}.yaml"
                         f"{_found_in(overrides, where.group(1))}; a suite file sets {', '.join(SUITE_KEYS)} "
                         "(other groups' keys under '# @package _global_')") from None


SUITE_KEYS = ("name", "sources", "targets", "validation", "finetune_source")
TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}


def explain(error: Exception) -> str:
    """A Hydra or OmegaConf composition error as one line naming the key and what it accepts
    (Hydra's own message runs over several lines, lists its search path, and for an unknown
    key suggests ``+key=``, which would only add a key that nothing reads)."""
    text, cause = str(error), str(error.__cause__ or error)
    choice = re.search(r"Could not find '(?:[^']*/)?([^'/]+)'\s+Available options in '([^']+)':\n((?:\t\S+\n?)*)",
                       text)
    if choice:
        return f"{choice.group(2)}: unknown choice {choice.group(1)!r}; valid: {', '.join(choice.group(3).split())}"
    key = re.search(r"full_key: (\S+)", cause)
    if key is None:  # e.g. a syntax error: Hydra's first line, and where its grammar is
        return " ".join(text.split("\nConfig search path")[0].split())
    key = key.group(1)
    unknown = re.search(r"Key '[^']+' not in '(\w+)'", cause)
    if unknown:
        return unknown_key(key, schemas().get(unknown.group(1)))
    if value := re.search(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", cause):
        return f"{key}: must be {TYPE_WORDS.get(value.group(2), value.group(2))}, got {value.group(1)!r}"
    if value := re.search(r"Value '(.*)' is not a valid bool", cause):
        return f"{key}: must be true or false, got {value.group(1)!r}"
    return f"{key}: {cause.splitlines()[0]}"


@functools.cache
def schemas() -> dict[str, type]:  # a function: built once the registries are full
    """Every config dataclass by its class name (the name OmegaConf's errors give)."""
    found = {}

    def walk(cls: type) -> None:
        found[cls.__name__] = cls
        for f in dataclasses.fields(cls):
            kind = f.type if isinstance(f.type, type) else vars(config).get(str(f.type))
            if isinstance(kind, type) and dataclasses.is_dataclass(kind):
                walk(kind)

    walk(config.Config)
    for registry in (METHODS, MODELS):
        for name in registry:
            walk(registry.get(name).config)
    return found


def _yaml_message(error: yaml.YAMLError) -> str:
    """A YAML error as one line: the file, the line and column, and what is wrong there."""
    mark = getattr(error, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else "a config file"
    return f"{where}: not valid YAML ({getattr(error, 'problem', None) or str(error).splitlines()[0]})"


def _found_in(overrides: list[str], option: str) -> str:
    """`` (<path>)``: where the suite file lies among the config directories the overrides add."""
    for text in overrides:
        key, _, value = text.partition("=")
        if key == "hydra.searchpath":
            for entry in re.findall(r"file://([^,'\]\"]+)", value):
                path = Path(entry) / f"{option}.yaml"
                if path.exists():
                    return f" ({path})"
    return ""
