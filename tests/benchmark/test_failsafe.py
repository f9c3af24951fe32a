"""Runs that fail safely: divergence is recorded as such, never as a finished run; bad keys
and paths fail before any compute; result files are strict JSON and readable by others."""
import json
import logging
import os
import stat
import subprocess
import sys

import pytest
import torch

from benchmark.core.train import Diverged
from benchmark.runtime.execute import execute
from helpers import ROOT, cli, make_config

TOY = ["suite=toy", "train.steps=20", "metatest.steps=5"]


def strict_json_lines(path) -> list[dict]:
    """Parse JSON lines rejecting NaN / Infinity, which are not JSON."""
    def reject(token):
        raise ValueError(f"{path}: {token} is not JSON")

    return [json.loads(line, parse_constant=reject) for line in path.read_text().splitlines()]


def test_a_diverging_run_is_recorded_as_diverged_not_done(tmp_path):
    cfg = make_config(*TOY, "train.inner_lr=1e4", f"results_dir={tmp_path}")
    with pytest.raises(Diverged, match="non-finite (loss|phi) at meta-train step") as info:
        execute(cfg, progress=False)
    (folder,) = tmp_path.glob("toy/ours/*")
    assert not (folder / "done").exists() and (folder / "diverged").exists()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "diverged" and "target_accuracy" not in summary
    where = summary["diverged"]
    assert where["stage"] == "meta-train" and 1 <= where["step"] <= 20
    assert f"step {where['step']}" in str(info.value)
    strict_json_lines(folder / "metrics.jsonl")  # null, never NaN
    assert not list(folder.rglob("phi_final.pt")), "a diverged phi is never saved as final"

    # A rerun does not train again: the folder is a finished (diverged) run.
    mtime = (folder / "summary.json").stat().st_mtime_ns
    with pytest.raises(Diverged, match="diverged"):
        execute(cfg, progress=False)
    assert (folder / "summary.json").stat().st_mtime_ns == mtime


def test_a_non_finite_loss_names_its_task_and_logs_null(tmp_path):
    cfg = make_config(*TOY, "train.inner_lr=1e30", f"results_dir={tmp_path}")  # the losses blow up first
    with pytest.raises(Diverged, match="non-finite loss at meta-train step 2 on toy_") as info:
        execute(cfg, progress=False)
    (folder,) = tmp_path.glob("toy/ours/*")
    where = json.loads((folder / "summary.json").read_text())["diverged"]
    assert where["what"] == "loss" and where["task"] in cfg.suite.sources and where["task"] in str(info.value)
    rows = strict_json_lines(folder / "metrics.jsonl")
    assert [r["loss"] for r in rows if r["task"] == where["task"]] == [None]


def test_the_diverged_step_is_exact_and_earlier_steps_were_finite(tmp_path):
    """A 1e4 step size blows up within a few steps; the step named is the first non-finite
    one, so the logged rows before it are finite numbers."""
    cfg = make_config(*TOY, "train.inner_lr=1e4", f"results_dir={tmp_path}")
    with pytest.raises(Diverged):
        execute(cfg, progress=False)
    (folder,) = tmp_path.glob("toy/ours/*")
    where = json.loads((folder / "summary.json").read_text())["diverged"]
    step = where["step"]
    rows = strict_json_lines(folder / "metrics.jsonl")
    assert all(r["loss"] is not None for r in rows if r["step"] < step)
    if where["what"] == "loss":  # else phi overflowed first, while the losses were still finite
        assert any(r["loss"] is None for r in rows if r["step"] == step and r["task"] == where["task"])
    assert max(r["step"] for r in rows) == step, "the run stops at the step that diverged"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["inner_steps"] == step * len(cfg.suite.sources)


def test_a_diverging_meta_test_is_recorded_as_diverged(tmp_path):
    cfg = make_config(*TOY, "metatest.lr=1e30", f"results_dir={tmp_path}")
    with pytest.raises(Diverged, match="meta-test"):
        execute(cfg, progress=False)
    (folder,) = tmp_path.glob("toy/ours/*")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged"]["stage"] == "meta-test"
    assert summary["diverged"]["task"] in cfg.suite.targets
    assert not (folder / "done").exists()


def test_a_non_finite_phi_is_caught_even_while_the_losses_are_finite(tmp_path, monkeypatch):
    from methods.ours import CTS

    def poison(self, step, pop):
        if step == 7:
            pop.phi[0] = float("nan")  # no shift and no reset before step 100: the learners stay finite

    monkeypatch.setattr(CTS, "after_step", poison)
    cfg = make_config(*TOY, f"results_dir={tmp_path}")
    with pytest.raises(Diverged, match="non-finite phi"):
        execute(cfg, progress=False)
    (folder,) = tmp_path.glob("toy/ours/*")
    assert json.loads((folder / "summary.json").read_text())["diverged"]["what"] == "phi"


def test_cli_exits_with_the_diverged_code_and_one_line(tmp_path):
    out = cli(*TOY, "train.inner_lr=1e4", f"results_dir={tmp_path}")
    assert out.returncode == 3, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "diverged" in errors[0] and "Traceback" not in out.stderr


@pytest.mark.parametrize("override,key", [
    ("runner.device=bogus", "runner.device"),
    ("runner.device=cuda:x", "runner.device"),
    ("metatest.at_steps=[5,25]", "metatest.at_steps"),
    ("suite.targets=[toy_e,toy_a]", "toy_a"),
])
def test_bad_keys_fail_before_compute_naming_the_key(tmp_path, override, key):
    out = cli(*TOY, override, f"results_dir={tmp_path}")
    assert out.returncode == 2, out.stderr
    assert key in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "toy").exists()


def test_a_task_in_two_roles_names_both(tmp_path):
    out = cli(*TOY, "suite.targets=[toy_e,toy_a]", f"results_dir={tmp_path}")
    assert "suite.sources" in out.stderr and "suite.targets" in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_a_gpu_fails_before_compute_and_leaves_no_folder(tmp_path):
    out = cli(*TOY, "runner.device=cuda", f"results_dir={tmp_path}")
    assert out.returncode == 2 and "runner.device" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not any(tmp_path.iterdir())


def test_results_dir_that_is_a_file_is_named(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("")
    out = cli(*TOY, f"results_dir={path}")
    assert out.returncode == 2 and "results_dir" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_result_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        run = execute(make_config(*TOY, "train.steps=5", f"results_dir={tmp_path}"), progress=False)
    finally:
        os.umask(old)
    for name in ("summary.json", "metrics.jsonl", "metatest.jsonl", "config.yaml", "checkpoints/phi_final.pt"):
        assert stat.S_IMODE((run.path / name).stat().st_mode) == 0o644, name


def test_a_damaged_metrics_tail_is_dropped_back_to_the_checkpoint_on_resume(tmp_path, monkeypatch, caplog):
    """40 bytes cut off metrics.jsonl after a stop: the resume names the file, drops the damaged
    rows and logs them again, and ends with the rows of an uninterrupted run."""
    args = [*TOY, "checkpoint.every=5", "train.log_every=2"]
    whole = execute(make_config(*args, f"results_dir={tmp_path / 'whole'}"), progress=False)
    monkeypatch.setenv("LSML_FAULT", "0:13")  # a crash after the checkpoint at step 10
    with pytest.raises(RuntimeError, match="injected fault"):
        execute(make_config(*args, f"results_dir={tmp_path / 'cut'}"), progress=False)
    monkeypatch.delenv("LSML_FAULT")
    (metrics,) = (tmp_path / "cut").rglob("metrics.jsonl")
    metrics.write_bytes(metrics.read_bytes()[:-40])
    partial = metrics.parent / "checkpoints" / ".state_10_rank0.pt.k3j9d0a1.tmp"  # a write killed midway
    partial.write_bytes(b"PK\3\4")
    logger = logging.getLogger("lsml")
    logger.addHandler(caplog.handler)
    try:
        run = execute(make_config(*args, f"results_dir={tmp_path / 'cut'}"), progress=False)
    finally:
        logger.removeHandler(caplog.handler)
    assert run.done and f"damaged {metrics}: dropped 1 line(s)" in caplog.text
    assert not partial.exists() and f"removing {partial}" in caplog.text
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(strict_json_lines(metrics)) == strip(strict_json_lines(whole.path / "metrics.jsonl"))


def test_a_full_disk_ends_with_one_line_saying_so_and_no_half_file(tmp_path):
    """A run on a 40 kB file system (a tmpfs in a mount namespace of its own): torch's "unexpected
    pos" becomes a line naming the file, exit 1, and no temp file or done is left."""
    disk = tmp_path / "disk"
    disk.mkdir()
    run = " ".join([sys.executable, "-m", "benchmark.run", *TOY, "runner.threads=1", 'results_dir="$0"'])
    script = f'mount -t tmpfs -o size=40k tmpfs "$0" || exit 99; {run} 2>"$0.err"; echo "rc=$?"; find "$0" -type f'
    proc = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script, str(disk)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode == 99 or "unshare:" in proc.stderr:
        pytest.skip(f"no mount namespace here: {proc.stderr.strip()}")
    lines = (tmp_path / "disk.err").read_text().strip().splitlines()
    assert "rc=1" in proc.stdout and "Traceback" not in "\n".join(lines), lines
    assert lines[-1].startswith("error: the disk is full") and str(disk) in lines[-1], lines
    files = proc.stdout.split("\n", 1)[1].split()
    assert not [f for f in files if f.endswith(".tmp") or f.endswith("/done")], files
