"""Measurement scripts, not part of the runner: each times one thing on this machine and
prints figures for a human to read (they are noisy, so nothing here asserts a speed).
``python -m benchmark.perf.overhead`` times the runner's per-step cost against a bare
PyTorch loop, ``benchmark.perf.scaling`` a multi-process run against one process, and
``benchmark.perf.datapath`` the data path against a ResNet-20 step; each has ``--help``.
"""
