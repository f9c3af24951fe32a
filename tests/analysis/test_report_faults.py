"""A report that is killed leaves nothing behind for good, and a summary.json that is not strict
JSON (NaN) is named and skipped, never read as a number."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from analysis.collect import collect
from analysis.report import main

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "tests" / "fixtures" / "runs"


def test_a_killed_report_leaves_no_hidden_folder_after_the_next_report(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "analysis.report", str(RUNS), "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".report.tmp-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob(".report.tmp-*")), "the report was killed while writing its folder"
    old = tmp_path / ".report.tmp-k3j9d0a1"  # an older version's, a day old
    old.mkdir()
    stamp = time.time() - 2 * 86400
    os.utime(old, (stamp, stamp))
    live = tmp_path / f".report.tmp-{os.getpid()}-abc"  # a report still writing (this process)
    live.mkdir()
    assert main([str(RUNS), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["report", live.name])


def test_a_summary_holding_nan_is_named_and_skipped(tmp_path, caplog):
    runs = tmp_path / "runs"
    shutil.copytree(RUNS, runs)
    summary = sorted(p.parent / "summary.json" for p in runs.rglob("done"))[0]
    s = json.loads(summary.read_text())
    summary.write_text(json.dumps({**s, "mean_accuracy": float("nan")}))  # NaN: Python's json, not JSON
    collection = collect(runs)
    (problem,) = [p for p in collection.unreadable if "NaN" in p]
    assert str(summary.relative_to(runs)) in problem and "not strict JSON" in problem
    logger = logging.getLogger("lsml")
    logger.addHandler(caplog.handler)
    try:
        assert main([str(runs), "--out", str(tmp_path / "report")]) == 0
    finally:
        logger.removeHandler(caplog.handler)
    assert f"skipped unreadable run: {summary.relative_to(runs)}: NaN is not strict JSON" in caplog.text
