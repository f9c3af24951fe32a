"""Hydra's multirun (``benchmark.run -m``) runs every job, skips finished ones, exits 0 when all
are done and names the jobs that failed otherwise (benchmark/runtime/multirun.py)."""
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

TINY = ["suite=toy", "seed=0", "train.steps=6", "method.reset_every=5", "metatest.steps=2", "runner.threads=1"]


def multirun(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark.run", "-m", "method=ours,reptile", *TINY, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def finished(results):
    return sorted(p.parent.parent.name for p in results.glob("toy/*/*/done"))


def test_every_job_runs_and_a_failed_one_is_named(tmp_path):
    out = multirun(f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert finished(tmp_path) == ["ours", "reptile"]
    assert "2 of 2 multirun jobs done" in out.stderr

    shutil.rmtree(tmp_path / "toy" / "reptile")
    again = multirun(f"results_dir={tmp_path}", env={"LSML_FAULT": "0:3"})  # reptile fails; ours is skipped
    assert again.returncode == 1
    assert "already done" in again.stderr and "1 of 2 multirun jobs done" in again.stderr
    assert "error: multirun job #1 (method=reptile" in again.stderr and "ended with exit code 1" in again.stderr
    assert finished(tmp_path) == ["ours"]


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    out = multirun(f"results_dir={tmp_path}", "hydra/launcher=submitit_local")
    assert out.returncode == 0, out.stderr
    assert finished(tmp_path) == ["ours", "reptile"]
    assert "2 of 2 multirun jobs done" in out.stderr and "Traceback" not in out.stderr
