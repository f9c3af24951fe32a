"""The measurement scripts of ``benchmark.perf`` parse their command line and run end to end.

Their timings are not asserted: on these shared machines they are noise. Each smoke run
uses the smallest settings that still print every result line.
"""
import re
import subprocess
import sys

import pytest

from benchmark.perf import datapath, decode, overhead, scaling, truncation
from methods import METHODS

SCRIPTS = {"overhead": "per-step overhead", "scaling": "multi-process run", "datapath": "Data-path speed",
           "decode": "Decoding speed", "truncation": "image cut short"}


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_prints_usage_and_what_is_measured(name):
    out = subprocess.run([sys.executable, "-m", f"benchmark.perf.{name}", "--help"],
                         check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: python -m benchmark.perf.{name} ")
    assert SCRIPTS[name] in out.stdout
    assert "--repeats" in out.stdout


@pytest.mark.parametrize("module, argv, flag", [
    (overhead, ["repeats=2", "suite=toy"], "--repeats 2"),
    (overhead, ["suite=toy", "steps=3"], "--steps 3"),
    (scaling, ["world_size=3"], "--world-size 3"),
])
def test_old_key_value_knobs_are_refused_with_the_option_to_use(module, argv, flag, capsys):
    with pytest.raises(SystemExit) as stop:
        module.main(argv)
    assert stop.value.code == 2
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize("module, argv", [(overhead, ["--steps", "0"]), (scaling, ["--repeats", "0"]),
                                          (datapath, ["--batch", "0"]), (decode, ["--images", "0"]),
                                          (truncation, ["--repeats", "0"])])
def test_non_positive_counts_are_refused(module, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        module.main(argv)
    assert stop.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_overhead_reports_every_ratio(capsys, monkeypatch, compile):
    cts = METHODS.get("ours").build
    monkeypatch.setattr(cts, "after_step", cts.after_step)  # the script wraps it; undone after the test
    overhead.main(["--repeats", "2", "--steps", "3", "suite=toy", "runner.threads=1",
                   "--compile" if compile else "--no-compile"])
    out = capsys.readouterr().out
    compiled = ("compiled / bare PyTorch loop", "compiled / reptile (eager)")
    for label in ("runner / bare PyTorch loop", "ours / reptile(K=steps)", "reptile / reptile (A/A)",
                  "1 + CTS after_step share", *(compiled if compile else ())):
        assert re.search(re.escape(label) + r":\s+median \d+\.\d+ \(all: \d", out), label
    assert ("compiled: first step done after" in out) == compile
    assert out.count("repeat ") == 2
    assert "suite=toy steps=3 tasks=4 threads=1" in out


def test_scaling_interleaves_world_sizes_and_reports_the_median_ratio(capsys, monkeypatch):
    calls = []

    def fake(overrides, world_size):  # ms per task-step: W=1 takes 10, W=3 takes 15, 20, 25
        calls.append((tuple(overrides), world_size))
        return 1e-2 if world_size == 1 else 5e-3 * (len(calls) // 2 + 2)

    monkeypatch.setattr(scaling, "wall_per_task_step", fake)
    scaling.main(["suite=toy", "--repeats", "3", "--world-size", "3"])
    assert calls == [(("suite=toy",), w) for _ in range(3) for w in (1, 3)]
    out = capsys.readouterr().out
    assert "repeat 1: W=1 10.00 ms/task-step, W=3 20.00 ms/task-step, ratio 2.000" in out
    assert "W=3 / W=1 per task-step: median 2.000 over 3 repeats" in out


@pytest.mark.slow
def test_scaling_runs_end_to_end(capsys):
    # One repeat spawns two runs, `benchmark.run` with W = 1 then with W = 2 (a launcher and
    # two ranks): four Python start-ups, about 12 s on 2 cores.
    scaling.main(["--repeats", "1", "--world-size", "2", "suite=toy", "train.steps=2", "runner.threads=1"])
    out = capsys.readouterr().out
    assert re.search(r"repeat 0: W=1 \d+\.\d+ ms/task-step, W=2 \d+\.\d+ ms/task-step, ratio \d+\.\d+", out)
    assert re.search(r"W=2 / W=1 per task-step: median \d+\.\d+ over 1 repeats", out)


def test_datapath_reports_every_image_size(capsys):
    datapath.main(["--batch", "4", "--repeats", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "device=cpu" in out and "batch=4" in out
    for size in (28, 32, 64, 84):
        assert re.search(rf"^\s+{size}\s+\d+\s+\d+\s+\d+\.\d%$", out, re.MULTILINE), size


def test_decode_times_both_runs_at_every_size(capsys):
    """20 JPEGs, sizes 16 and 24, one repeat: four fresh processes, a few seconds."""
    decode.main(["--images", "20", "--sizes", "16", "24", "--repeats", "1"])
    out = capsys.readouterr().out
    assert out.startswith("20 JPEGs of 320x240 in 10 classes")
    for size in (16, 24):
        assert re.search(rf"^ +{size} px: first run +\d+ img/s \(check +\d+, load +\d+\); "
                         rf"cached run +\d+ img/s \(check +\d+, load +\d+\)$", out, re.MULTILINE), size


def test_truncation_times_every_way_to_find_a_truncated_image(capsys):
    truncation.main(["--images", "20", "--repeats", "1"])
    out = capsys.readouterr().out
    assert out.startswith("20 JPEGs of 320x240")
    for name in truncation.CASES:
        assert re.search(rf"^  {re.escape(name)} +\d+\.\d$", out, re.MULTILINE), name
