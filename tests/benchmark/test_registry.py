import pytest

from benchmark.models import MODELS
from benchmark.registry import Registry, UnknownNameError
from methods.base import METHODS
from tasks.registry import SUITES, TASKS


def test_duplicate_name_raises():
    reg = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="duplicate widget name 'a'"):
        reg.add("a", 2)


def test_unknown_name_lists_valid_names():
    reg = Registry("widget")
    reg.register("a")(1)
    reg.register("b")(2)
    with pytest.raises(UnknownNameError, match="unknown widget 'c'; valid widget names: a, b"):
        reg.get("c")


@pytest.mark.parametrize("registry", [METHODS, MODELS, SUITES, TASKS], ids=lambda r: r.kind)
def test_real_registries_refuse_duplicates(registry):
    name = registry.names()[0]
    with pytest.raises(ValueError, match="duplicate"):
        registry.add(name, registry.get(name))


def test_suites_name_registered_tasks():
    for name in SUITES:
        suite = SUITES.get(name)
        assert set(suite.sources).isdisjoint(suite.targets), name
        for task in (*suite.sources, *suite.targets):
            assert task in TASKS
