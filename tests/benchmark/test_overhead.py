"""The overhead script runs end to end (its timings are not asserted: they are noise here)."""
import re

from benchmark import overhead
from methods import METHODS


def test_overhead_script_reports_every_ratio(capsys, monkeypatch):
    cts = METHODS.get("ours").build
    monkeypatch.setattr(cts, "after_step", cts.after_step)  # the script wraps it; undone after the test
    overhead.main(["suite=toy", "repeats=2", "steps=3", "runner.threads=1"])
    out = capsys.readouterr().out
    for label in ("runner / bare PyTorch loop", "ours / reptile(K=steps)", "reptile / reptile (A/A)",
                  "1 + CTS after_step share"):
        assert re.search(re.escape(label) + r":\s+median \d+\.\d+ \(all: \d", out), label
    assert out.count("repeat ") == 2
