"""``runner.compile``: the meta-training inner step's body forward (and its backward)
through ``torch.compile``.

Only the body is compiled, as one function that every learner shares. The bodies have
one architecture and dynamo passes a module's parameters and buffers as graph inputs, so
one compilation serves every learner of every rank, and every learner runs the same
kernels whatever the process layout (a world size of 2 gives the phi of 1). The heads
differ in num_classes: compiling head and loss too recompiled once per head size (8 on
glyphs, dynamo's default limit) or, with the head size dynamic, was no faster; they stay
eager, and so do validation forwards (iMAML differentiates through them twice).

Compiled kernels round differently from eager ones: phi is close to the eager run's, not
equal. It is bit-identical across repeats, resumes and world sizes at equal threads.

Measured on glyphs at its defaults, 1 thread, both cores busy (medians of interleaved
repeats): a compiled step takes 0.66 of an eager one in one process (A/A 1.03) and 0.76
in ``python -m benchmark.perf.overhead`` (A/A 1.06); the first step is done after 20 s
(cold inductor cache; 3 s warm). A channels_last input (0.98 of the compiled step) and a
compiled ``Population.inner_step`` (1.03) were within that noise, so neither is used.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn


def _body_forward(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return body(x)


@functools.cache
def body_forward(compile: bool) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """``(body, x) -> features``, compiled or not; one compiled function per process, so
    every run of the process reuses its graph."""
    return torch.compile(_body_forward) if compile else _body_forward


def _probe(x: torch.Tensor) -> torch.Tensor:
    return x * 2 + 1


@functools.cache
def check_compile(device: torch.device) -> None:
    """ValueError naming ``runner.compile`` unless torch.compile builds kernels for ``device``
    here (a C++ compiler on CPU): a tiny function is compiled now, before any data or
    folder, rather than the run failing at its first step."""
    try:
        if device.type == "cpu":  # a cached probe would load without one
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()
        torch.compile(_probe)(torch.ones(2, device=device))
    except Exception as e:  # noqa: BLE001  (any failure means: not here)
        reason = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"runner.compile: torch.compile cannot build kernels for {device} here "
                         f"({type(e).__name__}: {reason}); set runner.compile=false") from None
