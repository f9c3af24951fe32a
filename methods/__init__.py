"""Meta-learning methods. Importing this package registers every method in ``METHODS``.

Registration order (the import order below) is the row order of tables and plots.
"""
from methods.base import METHODS, Method, MethodConfig, register_method  # noqa: F401
from methods import ours, reptile, fomaml, fomaml_pp, multitask, finetune, scratch, leap, imaml, anil  # noqa: F401,E402
