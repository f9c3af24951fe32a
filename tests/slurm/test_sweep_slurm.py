"""``launcher=slurm`` on the local one-node cluster: it submits one job array and returns at
once, resubmits nothing that is done, and a job requeued mid-run resumes bit-identically;
``benchmark.tune`` submits its trials the same way and selects once they are done."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch
import yaml

from benchmark import tune
from benchmark.runtime.execute import execute
from benchmark.sweep import main
from benchmark.sweeps import tuning
from helpers import ROOT, make_config

TOY = ["suite=toy", "runner.threads=1", "metatest.steps=5"]
SLURM = ["launcher=slurm", "slurm.cpus_per_task=1", "slurm.time_min=10", "slurm.partition=debug"]


def sweep(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "benchmark.sweep", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def wait_done(results, n: int, cluster, timeout: float = 180) -> None:
    # No sacct here: a job that dies without a result is invisible to submitit, so poll
    # the run folders and bound the wait.
    deadline = time.monotonic() + timeout
    while len(list(results.glob("toy/*/*/done"))) < n:
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in results.glob(".submitit/*/*.err"))
            pytest.fail(f"runs not done after {timeout}s\n{cluster.squeue()}\n{logs}", pytrace=False)
        time.sleep(1)


@pytest.mark.slurm
def test_submit_returns_at_once_and_never_resubmits_done_runs(slurm_cluster, tmp_path, capsys):
    args = ["-", *TOY, "train.steps=100", "method=ours,reptile", "seed=0,1", f"results_dir={tmp_path}", *SLURM]
    out = sweep(*args)
    assert "4 runs: 4 missing; 4 to submit" in out.stdout
    assert slurm_cluster.squeue("-h").strip(), "the sweep returned after its jobs were gone"
    records = json.loads((tmp_path / ".submitit" / "submitted.json").read_text())
    assert len(records) == 4 and len({r["job_id"].split("_")[0] for r in records.values()}) == 1  # one array

    assert main([*args, "--status"]) == 0
    status = capsys.readouterr().out
    rows = [line.split() for line in status.splitlines() if line.split()[:1] in (["ours"], ["reptile"])]
    assert len(rows) == 4 and all(r[3] in ("running", "done") for r in rows), status
    assert any(r[4:6] == ["job", records[r[2]]["job_id"]] for r in rows), status  # squeue names the job

    wait_done(tmp_path, 4, slurm_cluster)
    out = sweep(*args)
    assert "4 runs: 4 done; 0 to submit" in out.stdout
    assert not slurm_cluster.squeue("-h").strip()


@pytest.mark.slurm
def test_a_requeued_job_resumes_bit_identically(slurm_cluster, tmp_path):
    run = [*TOY, "train.steps=400", "checkpoint.every=20"]
    sweep("-", *run, f"results_dir={tmp_path / 'slurm'}", *SLURM)
    (record,) = json.loads((tmp_path / "slurm" / ".submitit" / "submitted.json").read_text()).values()
    deadline = time.monotonic() + 120
    while not list((tmp_path / "slurm").rglob("resume.json")):
        assert time.monotonic() < deadline, slurm_cluster.squeue()
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", record["job_id"]], check=True, timeout=30)

    reference = execute(make_config(*run, f"results_dir={tmp_path / 'reference'}"), progress=False)
    wait_done(tmp_path / "slurm", 1, slurm_cluster)
    log = (tmp_path / "slurm" / ".submitit" / record["job_id"])
    assert "resuming" in "".join(p.read_text() for p in log.glob("*.err")), "the job did not resume"
    (final,) = (tmp_path / "slurm").rglob("phi_final.pt")
    got, want = torch.load(final), reference.load_phi("final")
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key


@pytest.mark.slurm
def test_tune_submits_one_array_then_selects_the_best_trial(slurm_cluster, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # a job runs where it was submitted from
    # 30 steps, not 10: at 10 both trials score the same and only the tie-break would be tested.
    shared = ["suite=toy", f"results_dir={tmp_path}", "train.steps=30", "metatest.steps=3", "runner.threads=1"]
    args = ["method=ours", "trials=2", "seeds=[100]", *shared, *SLURM]
    assert tune.main(args) == 0
    out = capsys.readouterr().out
    assert "2 runs: 2 missing; 2 to submit" in out and "not selected yet" in out, out
    records = json.loads((tmp_path / ".submitit" / "submitted.json").read_text())
    assert len(records) == 2 and len({r["job_id"].split("_")[0] for r in records.values()}) == 1  # one array

    assert tune.main([*args, "--status"]) == 0
    status = capsys.readouterr().out
    rows = [line.split() for line in status.splitlines() if line.split()[:1] == ["ours"]]
    assert len(rows) == 2 and all(r[4] in ("running", "done") for r in rows), status

    wait_done(tmp_path, 2, slurm_cluster)
    assert tune.main(args) == 0
    out = capsys.readouterr().out
    assert "2 runs: 2 done; 0 to submit" in out, out
    assert json.loads((tmp_path / ".submitit" / "submitted.json").read_text()) == records  # nothing resubmitted

    # The best trial, from the run folders themselves (one tuning seed: a trial's score is its run's).
    _, runs, _ = tuning.plan({"method": "ours", "trials": "2", "seeds": "[100]"}, shared)
    scores = {int(r.axes["trial"]): json.loads((r.dir.path / "summary.json").read_text())["validation_mean"]
              for r in runs}
    assert len(set(scores.values())) == 2, scores
    best = max(scores, key=scores.get)
    selected = yaml.safe_load((tmp_path / "selected" / "toy" / "ours.yaml").read_text())
    assert selected["trial"] == best and selected["score"] == pytest.approx(scores[best], abs=1e-6), selected
    assert tune.main([*args, "--status"]) == 0
    assert f"* trial  {best}" in capsys.readouterr().out
