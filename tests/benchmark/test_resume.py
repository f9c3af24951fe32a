"""Exact resume: a run killed mid-way and run again ends with phi_final bit-identical
to an uninterrupted run of the same config."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from benchmark.run import execute
from helpers import ROOT, make_config

ARGS = ["suite=toy", "runner.threads=1", "train.steps=300", "checkpoint.every=20", "method.reset_every=7",
        "method.aggregate_every=1"]


def final_phi(root) -> dict:
    (path,) = root.rglob("phi_final.pt")
    return torch.load(path)


def assert_bit_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def start(results, *extra):
    return subprocess.Popen([sys.executable, "-m", "benchmark.run", *ARGS, *extra, f"results_dir={results}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoint(results, min_step: int, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pointers = list(results.rglob("resume.json"))
        if pointers and json.loads(pointers[0].read_text())["step"] >= min_step:
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise TimeoutError("no checkpoint appeared")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    out = subprocess.run([sys.executable, "-m", "benchmark.run", *ARGS, f"results_dir={root}"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return final_phi(root)


@pytest.mark.parametrize("method", ["ours"])
def test_kill_9_then_rerun_is_bit_identical(tmp_path, uninterrupted, method):
    proc = start(tmp_path)
    wait_for_checkpoint(tmp_path, 40, proc)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    assert not list(tmp_path.rglob("done"))
    again = start(tmp_path)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert "resuming" in output
    assert_bit_identical(final_phi(tmp_path), uninterrupted)


def test_a_second_process_on_a_running_folder_fails_and_leaves_it_alone(tmp_path, uninterrupted):
    """Without the run's lock, the second would resume from the first's checkpoint and both
    would write the same folder (before any checkpoint, it would clear the folder)."""
    first = start(tmp_path)
    wait_for_checkpoint(tmp_path, 20, first)
    second = start(tmp_path)
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 1 and "is being run by another process" in output, output
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    assert_bit_identical(final_phi(tmp_path), uninterrupted)


def test_sigterm_checkpoints_the_current_step_and_resumes(tmp_path, uninterrupted):
    proc = start(tmp_path)
    wait_for_checkpoint(tmp_path, 20, proc)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "checkpoint written" in output
    (pointer,) = tmp_path.rglob("resume.json")
    step = json.loads(pointer.read_text())["step"]
    assert step < 300
    again = start(tmp_path)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0 and f"from step {step}" in output, output
    assert_bit_identical(final_phi(tmp_path), uninterrupted)
    assert not list(tmp_path.rglob("state_*.pt")), "resumable state is removed once done"


@pytest.mark.parametrize("method", ["fomaml_pp", "ours"])
def test_crash_then_resume_in_process_restores_everything(tmp_path, monkeypatch, method):
    """FOMAML++ with Adam carries meta-optimizer state, which the checkpoint must hold."""
    args = ["suite=toy", f"method={method}", "method.reset_every=7", "train.steps=30", "checkpoint.every=10"]
    if method == "fomaml_pp":
        args.append("method.meta_optimizer=adam")
    full = execute(make_config(*args, f"results_dir={tmp_path / 'full'}"), progress=False)
    cut = make_config(*args, f"results_dir={tmp_path / 'cut'}")
    monkeypatch.setenv("LSML_FAULT", "0:25")
    with pytest.raises(RuntimeError, match="injected fault"):
        execute(cut, progress=False)
    monkeypatch.delenv("LSML_FAULT")
    run = execute(cut, progress=False)
    assert run.done
    assert_bit_identical(run.load_phi("final"), full.load_phi("final"))
    steps = [r["step"] for r in run.read("metrics") if r["task"] == "toy_a"]
    assert steps == sorted(set(steps)), "no duplicated metric rows after a resume"


def test_runs_that_differ_only_in_paths_share_a_run_id(tmp_path):
    a = make_config("suite=toy", f"results_dir={tmp_path / 'a'}", "runner.threads=1")
    b = make_config("suite=toy", f"results_dir={tmp_path / 'b'}", "runner.threads=2", "runner.world_size=2")
    c = make_config("suite=toy", f"results_dir={tmp_path / 'c'}", "seed=1")
    from omegaconf import OmegaConf

    from benchmark.storage import run_id

    ids = [run_id(OmegaConf.to_container(OmegaConf.structured(x), resolve=True)) for x in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]
