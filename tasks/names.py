"""Task names with a scheme, ``folder:<path>[@px]`` and ``torchvision:<Name>[?k=v&...][@px]``:
their parts, read without touching any data (``tasks.user`` loads them)."""
from __future__ import annotations

from dataclasses import dataclass

SCHEMES = ("folder", "torchvision")


class TaskError(ValueError):
    """A task named by a scheme that cannot be used; the message is one line naming the key,
    the task and the path."""


def scheme(name: str) -> str | None:
    """``folder`` for ``folder:...``; None for a registered name (they never hold ':')."""
    return name.split(":", 1)[0] if ":" in name else None


@dataclass(frozen=True)
class Ref:
    scheme: str
    target: str  # the folder's path, or the torchvision class name
    kwargs: tuple[tuple[str, str], ...]  # torchvision keywords, as given
    size: int | None  # @<px>


def parse(name: str, key: str) -> Ref:
    """Split a name into its parts; a bad scheme or size is a TaskError."""
    kind, _, rest = name.partition(":")
    if kind not in SCHEMES:
        raise TaskError(f"{key}: task {name!r}: unknown scheme {kind + ':'!r}; schemes: "
                        f"{', '.join(s + ':' for s in SCHEMES)}, or a registered task name")
    size = None
    head, at, tail = rest.rpartition("@")
    if at and "/" not in tail:  # a path may hold '@' in a folder name, never in its last part
        if not tail.isdigit() or int(tail) < 1:
            raise TaskError(f"{key}: task {name!r}: the size @{tail} must be a positive number of pixels, e.g. @32")
        rest, size = head, int(tail)
    kwargs: tuple = ()
    if kind == "torchvision":
        rest, _, query = rest.partition("?")
        pairs = [p.partition("=") for p in query.split("&") if p]
        bad = [p[0] for p in pairs if not p[1] or not p[0]]
        if bad:
            raise TaskError(f"{key}: task {name!r}: {bad[0]!r} is not key=value")
        kwargs = tuple(sorted((k, v) for k, _, v in pairs))
    if not rest:
        raise TaskError(f"{key}: task {name!r}: names no {'path' if kind == 'folder' else 'class'}")
    return Ref(kind, rest, kwargs, size)
