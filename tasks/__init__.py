"""Task families. Importing this package registers every task and suite.

A new family is one file here that calls ``register_task`` / ``register_suite``, plus
one import line below.
"""
from tasks.registry import SUITES, TASKS  # noqa: F401
from tasks import glyphs, toy, vision  # noqa: F401,E402  (registration)
