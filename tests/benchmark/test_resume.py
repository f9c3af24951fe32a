"""Exact resume: a run killed mid-way and run again ends with phi_final bit-identical
to an uninterrupted run of the same config."""
import json
import platform
import signal
import subprocess
import sys
import time

import pytest
import torch

from omegaconf import OmegaConf

from benchmark import logs
from benchmark.runtime.execute import execute
from benchmark.runtime.storage import RunBusy, RunDir, cpu_model
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
        try:
            if pointers and json.loads(pointers[0].read_text())["step"] >= min_step:
                return
        except FileNotFoundError:  # moved to resume.prev.json just now
            pass
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


def test_a_second_process_on_a_running_folder_fails_and_leaves_it_alone(tmp_path, monkeypatch):
    """Without the run's lock, the second would resume from the first's checkpoint and both
    would write the same folder (before any checkpoint, it would clear the folder). Here
    the test holds the lock of a crashed run's folder, as a live run would."""
    cut, checkpoints, full_phi = crashed_at_25(tmp_path, monkeypatch, "cut")
    before = {p.name: p.stat().st_mtime_ns for p in checkpoints.parent.rglob("*") if p.is_file()}
    run = RunDir(OmegaConf.to_container(OmegaConf.structured(cut), resolve=True))
    with run.lock():
        with pytest.raises(RunBusy, match="is being run by another process"):
            execute(cut, progress=False)
        out = subprocess.run([sys.executable, "-m", "benchmark.run", "suite=toy", "method.reset_every=7",
                              "train.steps=30", "checkpoint.every=10", "runner.threads=1",
                              f"results_dir={tmp_path / 'cut'}"], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 75 and "is being run by another process" in out.stderr, out.stderr  # EXIT_BUSY
        assert run.locked()
    assert not run.locked()
    assert before == {p.name: p.stat().st_mtime_ns for p in checkpoints.parent.rglob("*") if p.is_file()}
    assert_bit_identical(execute(cut, progress=False).load_phi("final"), full_phi)


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


def crashed_at_25(tmp_path, monkeypatch, name, method="ours", *extra):
    """A run of 30 steps with checkpoints at 10 and 20 that crashed at step 25; and the
    phi_final of the same run uninterrupted."""
    args = ["suite=toy", f"method={method}", "method.reset_every=7", "train.steps=30", "checkpoint.every=10", *extra]
    full = execute(make_config(*args, f"results_dir={tmp_path / 'full'}"), progress=False)
    cut = make_config(*args, f"results_dir={tmp_path / name}")
    monkeypatch.setenv("LSML_FAULT", "0:25")
    with pytest.raises(RuntimeError, match="injected fault"):
        execute(cut, progress=False)
    monkeypatch.delenv("LSML_FAULT")
    (folder,) = (tmp_path / name).glob(f"toy/{method}/*")
    pointers = {p: json.loads((folder / "checkpoints" / p).read_text())["step"]
                for p in ("resume.json", "resume.prev.json")}
    assert pointers == {"resume.json": 20, "resume.prev.json": 10}
    return cut, folder / "checkpoints", full.load_phi("final")


@pytest.mark.parametrize("method,extra", [("fomaml", ["method.meta_optimizer=adam"]), ("ours", []),
                                          ("ours", ["method.hard_reset=true"])])
def test_crash_then_resume_in_process_restores_everything(tmp_path, monkeypatch, method, extra):
    """FOMAML with Adam carries meta-optimizer state, and the hard reset draws heads from each
    task's generator: the checkpoint must hold both."""
    cut, _, full_phi = crashed_at_25(tmp_path, monkeypatch, "cut", method, *extra)
    run = execute(cut, progress=False)
    assert run.done
    assert_bit_identical(run.load_phi("final"), full_phi)
    steps = [r["step"] for r in run.read("metrics") if r["task"] == "toy_a"]
    assert steps == sorted(set(steps)), "no duplicated metric rows after a resume"


@pytest.mark.parametrize("damage", ["truncated state", "corrupt pointer"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, monkeypatch, capfd, damage):
    cut, checkpoints, full_phi = crashed_at_25(tmp_path, monkeypatch, "cut")
    if damage == "truncated state":
        damaged = checkpoints / "state_20_rank0.pt"
        damaged.write_bytes(damaged.read_bytes()[:1000])
    else:
        damaged = checkpoints / "resume.json"
        damaged.write_text('{"step": 2')
    logs.setup("INFO")
    capfd.readouterr()
    run = execute(cut, progress=False)
    out = capfd.readouterr()
    assert str(damaged) in out.err and "previous checkpoint, step 10" in out.err, out.err
    assert "from step 10" in out.err
    assert_bit_identical(run.load_phi("final"), full_phi)


def test_no_intact_checkpoint_restarts_from_step_0_with_a_warning(tmp_path, monkeypatch, capfd):
    cut, checkpoints, full_phi = crashed_at_25(tmp_path, monkeypatch, "cut")
    for state in checkpoints.glob("state_*.pt"):
        state.write_bytes(b"")
    capfd.readouterr()
    run = execute(cut, progress=False)
    err = capfd.readouterr().err
    assert "state_20_rank0.pt" in err and "state_10_rank0.pt" in err and "restarting" in err, err
    assert_bit_identical(run.load_phi("final"), full_phi)


def test_runs_that_differ_only_in_paths_share_a_run_id(tmp_path):
    a = make_config("suite=toy", f"results_dir={tmp_path / 'a'}", "runner.threads=1")
    b = make_config("suite=toy", f"results_dir={tmp_path / 'b'}", "runner.threads=2", "runner.world_size=2")
    c = make_config("suite=toy", f"results_dir={tmp_path / 'c'}", "seed=1")
    from omegaconf import OmegaConf

    from benchmark.runtime.storage import run_id

    ids = [run_id(OmegaConf.to_container(OmegaConf.structured(x), resolve=True)) for x in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]


def test_a_key_added_later_keeps_old_run_ids_at_its_default():
    """storage.ADDED_KEYS: a config written before the key existed and one holding its default
    hash alike; setting it away from the default is another run."""
    from benchmark.runtime.storage import ADDED_KEYS, run_id

    new = OmegaConf.to_container(OmegaConf.structured(make_config("suite=toy")), resolve=True)
    assert "metatest.validation_at_steps" in ADDED_KEYS and new["metatest"]["validation_at_steps"] is False
    old = json.loads(json.dumps(new))
    del old["metatest"]["validation_at_steps"]
    changed = json.loads(json.dumps(new))
    changed["metatest"]["validation_at_steps"] = True
    assert run_id(new) == run_id(old) != run_id(changed)
    # the id of a glyphs run of today's defaults, recorded on 2026-12-01 (the protocol's tune runs)
    tuned = make_config("method=ours", "seed=100", "method.meta_lr=0.1", "method.reset_every=100",
                        "results_dir=results/tune")
    assert run_id(OmegaConf.to_container(OmegaConf.structured(tuned), resolve=True)) == "54bf3062f7a3"


def test_a_resume_under_another_thread_count_warns_and_the_layout_is_recorded(tmp_path, monkeypatch, capfd):
    cut, checkpoints, _ = crashed_at_25(tmp_path, monkeypatch, "cut")
    assert json.loads((checkpoints / "resume.json").read_text())["threads"] == 1
    more = make_config("suite=toy", "method.reset_every=7", "train.steps=30", "checkpoint.every=10",
                       "runner.threads=2", f"results_dir={tmp_path / 'cut'}")
    logs.setup("INFO")  # under pytest the root logger has handlers, so Python's last resort never prints
    capfd.readouterr()
    run = execute(more, progress=False)
    assert "written with 1 torch threads, this process runs 2" in capfd.readouterr().err
    assert run.summary()["layout"] == {"world_size": 1, "threads": 2, "device": "auto", "compile": False,
                                       "cpu": cpu_model()}


def test_the_cpu_model_is_read_from_cpuinfo_and_never_fails(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n")
    assert cpu_model(info) == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu_model(tmp_path / "absent") == (platform.processor() or platform.machine() or "unknown")
    info.write_text("processor\t: 0\nCPU part\t: 0xd0c\n")  # an ARM cpuinfo names no model
    assert cpu_model(info) == (platform.processor() or platform.machine() or "unknown")
