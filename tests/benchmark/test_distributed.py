"""Multi-process runs: any world size gives the one-process phi; a failing rank stops the run."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import torch

from benchmark.core.train import shard
from benchmark.runtime.distributed import Collective
from benchmark.runtime.execute import RunFailed, execute
from helpers import ROOT, cli, make_config
from methods import METHODS


def phi(run) -> torch.Tensor:
    state = run.load_phi("final")
    return torch.cat([v.reshape(-1).float() for k, v in state.items() if "running" not in k and "num_batches" not in k])


def test_shards_cover_every_task_once_and_unevenly():
    names = list("abcdefgh")
    for w in (1, 2, 3, 5, 8):
        parts = [shard(names, r, w) for r in range(w)]
        assert sum(parts, []) == names and all(parts)
    assert [len(shard(list("abcd"), r, 3)) for r in range(3)] == [1, 1, 2]


def test_mean_rows_weights_by_row_count():
    rows = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    assert Collective().mean_rows(rows).tolist() == [3.0, 6.0]


FAST = ("ours", "fomaml")  # the others spawn processes for a minute more: marked slow


@pytest.mark.parametrize("method", [m if m in FAST else pytest.param(m, marks=pytest.mark.slow)
                                    for m in METHODS.names() if METHODS.get(m).build.meta_trains
                                    and m != "finetune"])  # finetune trains one task: nothing to shard
def test_world_sizes_give_the_same_phi_bit_for_bit(method, tmp_path):
    """At each method's defaults (their meta step sizes included), with resets inside the run.
    Uneven shards (W = 3 of 4 tasks: 1, 1, 2) sum in the order of W = 1: equal, not close."""
    extra = [] if method == "multitask" else ["method.reset_every=4"]
    runs = {}
    for w in (1, 3):
        cfg = make_config("suite=toy", f"method={method}", f"runner.world_size={w}", *extra,
                          f"results_dir={tmp_path / str(w)}", "train.steps=10")
        runs[w] = phi(execute(cfg, progress=False))
    assert runs[1].abs().sum() > 0
    assert torch.equal(runs[3], runs[1]), f"max |diff| {(runs[3] - runs[1]).abs().max():.3g}"


RUN_TAG = "LSML_TEST_RUN_TAG"  # set only by the test below; the code under test never reads it


def tagged(tag: str) -> dict[int, str]:
    """pid -> command line of every live process whose environment holds ``RUN_TAG=tag``.

    The environment is inherited by everything a run starts and stays with a process when
    it is orphaned and re-parented, so this finds exactly what one test's run left behind:
    never another user's or another test's workers."""
    entry = f"{RUN_TAG}={tag}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:  # exited meanwhile, or another user's
            continue
        if entry in environ.split(b"\0"):
            found[int(proc.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def kill(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_failing_rank_stops_every_rank_with_its_traceback(tmp_path):
    tag = uuid.uuid4().hex
    env = {**os.environ, "LSML_FAULT": "1:5", RUN_TAG: tag}
    workers = {}  # every worker of this run seen while it ran: proves the tag reaches them
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "benchmark.run", "suite=toy", "runner.world_size=2",
                                 "runner.threads=1", "train.steps=200", f"results_dir={tmp_path}"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        try:
            while proc.poll() is None:
                if time.monotonic() - start > 120:
                    pytest.fail("the run did not stop within 120 s")
                workers.update({pid: cmd for pid, cmd in tagged(tag).items() if "benchmark.runtime.worker" in cmd})
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                kill(tagged(tag))
        elapsed = time.monotonic() - start
        stderr.seek(0)
        err = stderr.read()
    assert proc.returncode != 0
    assert elapsed < 60
    assert "Traceback" in err and "injected fault at step 5 on rank 1" in err
    assert not list(tmp_path.rglob("done"))
    assert workers, "saw no worker of the run: the orphan check below would prove nothing"
    leftover = tagged(tag)
    kill(leftover)  # leave nothing running for the next test
    assert not leftover, f"orphan processes of the run (workers seen: {sorted(workers)}): {leftover}"


def test_failing_rank_raises_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("LSML_FAULT", "0:3")
    cfg = make_config("suite=toy", "runner.world_size=2", f"results_dir={tmp_path}")
    with pytest.raises(RunFailed):
        execute(cfg, progress=False)


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")),
                    reason="torchrun not installed")
def test_torchrun_matches_self_spawn(tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    args = ["suite=toy", "runner.world_size=2", "runner.threads=1", "method.reset_every=4"]
    out = subprocess.run([torchrun, "--nproc_per_node=2", "--standalone",
                          "-m", "benchmark.run", *args, f"results_dir={tmp_path / 'torchrun'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    spawned = cli(*args, f"results_dir={tmp_path / 'spawn'}")
    assert spawned.returncode == 0, spawned.stderr[-3000:]
    (a,) = (tmp_path / "torchrun").rglob("phi_final.pt")
    (b,) = (tmp_path / "spawn").rglob("phi_final.pt")
    sa, sb = torch.load(a), torch.load(b)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=1e-6, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_nccl_on_two_gpus_matches_one_gpu(tmp_path):
    runs = {}
    for w in (1, 2):
        cfg = make_config("suite=toy", f"runner.world_size={w}", "runner.device=auto",
                          f"results_dir={tmp_path / str(w)}", "train.steps=12", "method.reset_every=4")
        runs[w] = phi(execute(cfg, progress=False))
    torch.testing.assert_close(runs[2], runs[1], atol=1e-5, rtol=0)


def test_a_diverging_multi_process_run_is_recorded_once_by_rank_0(tmp_path):
    """Every rank stops at the same step; rank 0 names the first non-finite step and task of
    the whole run (W = 3 of 4 tasks); the parent exits with the diverged code."""
    out = cli("suite=toy", "runner.world_size=3", "train.steps=20", "train.inner_lr=1e4", "train.log_every=1",
              f"results_dir={tmp_path}")
    assert out.returncode == 3, out.stderr
    (folder,) = tmp_path.glob("toy/ours/*")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "diverged" and not (folder / "done").exists()
    one = cli("suite=toy", "train.steps=20", "train.inner_lr=1e4", "train.log_every=1", "seed=0",
              f"results_dir={tmp_path / 'one'}")
    assert one.returncode == 3
    (single,) = (tmp_path / "one").glob("toy/ours/*")
    assert json.loads((single / "summary.json").read_text())["diverged"] == summary["diverged"]


def test_a_meta_test_divergence_in_a_multi_process_run_exits_3_without_a_traceback(tmp_path):
    """The meta-test runs on rank 0 alone: it must not wait at a barrier for ranks that left."""
    out = cli("suite=toy", "runner.world_size=2", "train.steps=10", "metatest.lr=1e30", f"results_dir={tmp_path}")
    assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr
    (folder,) = tmp_path.glob("toy/ours/*")
    assert json.loads((folder / "summary.json").read_text())["diverged"]["stage"] == "meta-test"


def test_sigterm_to_a_self_spawned_run_reaches_its_workers(tmp_path):
    """A sweep stops a run with SIGTERM to the process it started: the workers must checkpoint
    and exit too (not run on, orphaned and unlocked), and the run then resumes."""
    tag = uuid.uuid4().hex
    args = [sys.executable, "-m", "benchmark.run", "suite=toy", "runner.world_size=2", "runner.threads=1",
            "train.steps=3000", "checkpoint.every=500", f"results_dir={tmp_path}"]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, RUN_TAG: tag}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.rglob("metrics.jsonl")):  # the workers are training
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode != 0 and "checkpoint written" in output, output
        time.sleep(0.5)
        assert not {p: c for p, c in tagged(tag).items() if "benchmark.runtime.worker" in c}, "no worker runs on"
        (folder,) = tmp_path.glob("toy/ours/*")
        assert json.loads((folder / "checkpoints" / "resume.json").read_text())["world_size"] == 2
    finally:
        if proc.poll() is None:
            proc.kill()
        kill(tagged(tag))


def folder_state(root) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_kill_9_of_a_self_spawned_parent_takes_its_workers_with_it(tmp_path):
    """The parent holds the run's lock; workers that outlived it would train on unlocked, and a
    rerun would resume from checkpoints they write meanwhile. They die with it, write nothing
    more, and no config file is left in /tmp."""
    tag = uuid.uuid4().hex
    before = set(Path(tempfile.gettempdir()).glob("tmp*.yaml"))
    args = [sys.executable, "-m", "benchmark.run", "suite=toy", "runner.world_size=2", "runner.threads=1",
            "train.steps=3000", "checkpoint.every=20", f"results_dir={tmp_path}"]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, RUN_TAG: tag}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.rglob("resume.json")):  # the workers are training and checkpointing
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended or never checkpointed"
            time.sleep(0.05)
        workers = {p for p, c in tagged(tag).items() if "benchmark.runtime.worker" in c}
        assert len(workers) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        while {p for p, c in tagged(tag).items() if "benchmark.runtime.worker" in c} and time.monotonic() - killed < 5:
            time.sleep(0.05)
        assert not tagged(tag), "a worker outlived its parent by 5 s"
        state = folder_state(tmp_path)
        time.sleep(1.5)
        assert folder_state(tmp_path) == state, "something wrote after the parent was gone"
        assert set(Path(tempfile.gettempdir()).glob("tmp*.yaml")) <= before, "a config file was left in /tmp"
    finally:
        if proc.poll() is None:
            proc.kill()
        kill(tagged(tag))
