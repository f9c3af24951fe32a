"""The framework's shared pieces that plugins (methods, tasks, models) import: a name ->
object registry that raises on duplicates and lists valid names on a miss, and
``require``, the config check that names its key. The framework imports no plugin.

One registry instance per kind (methods, tasks, suites, models). It is the single source
of command-line choices, sweep grids, test parametrization and table row order
(registration order).
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


def require(ok: bool, key: str, message: str) -> None:
    """Config validation: fail with the dotted key that is wrong."""
    if not ok:
        raise ValueError(f"{key}: {message}")


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"duplicate {self.kind} name {name!r}: it is already registered")
        self._items[name] = item
        return item

    def put(self, name: str, item: T) -> T:
        """Add or replace: for items a process derives again from their name each time a config
        is validated (tasks named by a scheme, ``folder:<path>``), never for code's registrations."""
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form: ``@REGISTRY.register("name")``."""
        return lambda item: self.add(name, item)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid {self.kind} names: {', '.join(self._items)}"
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
