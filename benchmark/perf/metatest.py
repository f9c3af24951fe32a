"""Measure the meta-test with the body compiled (``runner.compile=true``) against eager; not a test.

One process meta-tests one target from one phi (the seeded phi_0) ``--repeats`` times in
each of three ways, interleaved and alternating their order so that a drift of the machine
cancels: eager, compiled, and eager again (an A/A control, the noise floor). Before the
repeats, one compiled meta-test warms the compiled graph (its seconds are printed). Prints
each repeat's seconds, then compiled / eager and eager / eager as medians over repeats.

    python -m benchmark.perf.metatest --repeats 5 runner.threads=1
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from hydra import compose, initialize_config_module

from benchmark.config import validate
from benchmark.core.compiled import check_compile
from benchmark.core.metatest import meta_test
from benchmark.core.train import initial_body
from benchmark.runtime.distributed import device_for
from benchmark.runtime.execute import load_data
from methods.base import METHODS
from tasks.registry import TASKS
from tasks.user import with_channels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.metatest", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", default=None, help="the target task (default: the suite's first)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="run config overrides")
    args = parser.parse_args(argv)
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        eager = validate(compose("config", overrides=[*args.overrides, "runner.compile=false"]))
        compiled = validate(compose("config", overrides=[*args.overrides, "runner.compile=true"]))
    torch.set_num_threads(eager.runner.threads or 1)
    device = device_for(eager.runner.device, None)
    check_compile(device)
    data = load_data(eager, METHODS.get(eager.method.name).build(eager.method))
    target = args.target or eager.suite.targets[0]
    spec = with_channels(TASKS.get(target), eager.data.channels)
    phi = {k: v.detach().clone() for k, v in initial_body(eager, spec.channels).state_dict().items()}

    def timed(cfg) -> float:
        start = time.perf_counter()
        meta_test(cfg, phi, spec, data[target], device, progress=False)
        return time.perf_counter() - start

    print(f"first compiled meta-test (compiling or loading the graph): {timed(compiled):.1f} s")
    times: dict[str, list[float]] = {"eager": [], "compiled": [], "eager again": []}
    for r in range(args.repeats):
        order = list(times) if r % 2 == 0 else list(reversed(times))
        for name in order:
            times[name].append(timed(compiled if name == "compiled" else eager))
        print(f"repeat {r}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in times), flush=True)
    ratio = lambda a, b: statistics.median(x / y for x, y in zip(times[a], times[b]))  # noqa: E731
    print(f"{target}, {eager.metatest.steps} steps, batch {eager.metatest.batch_size}, "
          f"{torch.get_num_threads()} thread(s), {args.repeats} repeats (medians of per-repeat ratios)")
    print(f"compiled / eager: {ratio('compiled', 'eager'):.3f}")
    print(f"eager again / eager (A/A): {ratio('eager again', 'eager'):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
