"""Meta-learning methods. Importing this package registers every method in ``METHODS``.

Registration order is the row order of tables and plots.
"""
from methods.base import METHODS, Method, MethodConfig, register_method  # noqa: F401
from methods import ours, reptile  # noqa: F401  (registration)
