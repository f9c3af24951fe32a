"""runner.compile: bit-identical across repeats, resumes and world sizes; close to eager, not
equal; outside the run id but recorded; no compiler fails before any compute.

The tests that compile are marked slow: a process's first compilation takes 10-30 s."""
import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from benchmark import logs
from benchmark.core.compiled import check_compile
from benchmark.runtime.execute import execute
from benchmark.runtime.storage import run_id
from helpers import ROOT, make_config

ARGS = ["suite=toy", "method=ours", "method.meta_lr=0.1", "method.reset_every=7", "train.steps=30", "checkpoint.every=10"]


def phi(run) -> torch.Tensor:
    state = run.load_phi("final")
    return torch.cat([v.reshape(-1).float() for k, v in state.items() if "running" not in k and "num_batches" not in k])


def run(tmp_path, name, *extra):
    return execute(make_config(*ARGS, *extra, f"results_dir={tmp_path / name}"), progress=False)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A compiled run's phi; its first run in the process compiles."""
    return phi(run(tmp_path_factory.mktemp("compiled"), "a", "runner.compile=true"))


@pytest.mark.slow
def test_a_compiled_run_repeats_bit_for_bit_and_is_close_to_eager(tmp_path, compiled):
    again = run(tmp_path, "again", "runner.compile=true")
    assert torch.equal(phi(again), compiled)
    assert again.summary()["layout"]["compile"] is True
    eager = phi(run(tmp_path, "eager"))
    assert torch.allclose(compiled, eager, rtol=1e-3, atol=1e-4), f"max |diff| {(compiled - eager).abs().max():.3g}"


def crashed_at_25(tmp_path, monkeypatch, *extra):
    """The run stopped by a fault at step 25, after checkpoints at 10 and 20."""
    monkeypatch.setenv("LSML_FAULT", "0:25")
    with pytest.raises(RuntimeError, match="injected fault"):
        run(tmp_path, "cut", *extra)
    monkeypatch.delenv("LSML_FAULT")
    (pointer,) = (tmp_path / "cut").rglob("resume.json")
    return json.loads(pointer.read_text())


@pytest.mark.slow
def test_a_compiled_run_resumes_bit_for_bit(tmp_path, monkeypatch, compiled, capfd):
    pointer = crashed_at_25(tmp_path, monkeypatch, "runner.compile=true")
    assert pointer["step"] == 20 and pointer["compile"] is True
    logs.setup("INFO")  # "resuming ..." is an INFO message
    capfd.readouterr()
    resumed = run(tmp_path, "cut", "runner.compile=true")
    out = capfd.readouterr()
    assert "from step 20" in out.err and "runner.compile=" not in out.err, out.err
    assert torch.equal(phi(resumed), compiled)


@pytest.mark.slow
def test_a_resume_with_another_runner_compile_warns_and_is_recorded(tmp_path, monkeypatch, capfd):
    assert crashed_at_25(tmp_path, monkeypatch)["compile"] is False
    capfd.readouterr()
    resumed = run(tmp_path, "cut", "runner.compile=true")
    assert "written with runner.compile=false, this run has runner.compile=true" in capfd.readouterr().err
    assert resumed.summary()["layout"]["compile"] is True


@pytest.mark.slow
def test_world_sizes_give_the_same_compiled_phi_bit_for_bit(tmp_path, compiled):
    """Every learner runs the one compiled body, whichever rank holds it."""
    two = phi(run(tmp_path, "two", "runner.compile=true", "runner.world_size=2"))
    assert torch.equal(two, compiled), f"max |diff| {(two - compiled).abs().max():.3g}"


def test_runner_compile_is_not_in_the_run_id():
    ids = {run_id(OmegaConf.to_container(OmegaConf.structured(make_config(*ARGS, f"runner.compile={c}")),
                                         resolve=True)) for c in ("false", "true")}
    assert len(ids) == 1


def test_no_compiler_fails_before_any_compute_naming_the_key(tmp_path, monkeypatch):
    from torch._inductor import config
    from torch._inductor.cpp_builder import cpp_compiler_search

    cpp_compiler_search.cache_clear()
    check_compile.cache_clear()
    try:  # config.patch, not monkeypatch: undoing a setattr on inductor's config deletes the key
        with config.patch({"cpp.cxx": ("no-such-c++",)}), pytest.raises(
                ValueError, match=r"^runner\.compile: torch\.compile cannot build kernels for cpu"):
            run(tmp_path, "none", "runner.compile=true", "runner.device=cpu")
    finally:
        cpp_compiler_search.cache_clear()
        check_compile.cache_clear()
    assert not (tmp_path / "none").exists()
    out = subprocess.run([sys.executable, "-m", "benchmark.run", *ARGS, "runner.compile=true", "runner.device=cpu",
                          "runner.threads=1", f"results_dir={tmp_path / 'cli'}"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "CXX": "no-such-c++"})
    assert out.returncode == 2, out.stderr  # EXIT_CONFIG
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: runner.compile: ") and line.endswith("set runner.compile=false")
    assert not (tmp_path / "cli").exists()


def test_the_meta_test_trains_through_the_compiled_body_when_the_run_is_compiled(tmp_path, monkeypatch):
    """Meta-tests are about 40% of a long run: with runner.compile=true they take the compiled body
    forward too (benchmark.core.compiled.body_forward(True)); eager runs keep the eager one."""
    import benchmark.core.metatest as metatest
    from benchmark.core.compiled import _body_forward

    asked = []

    def spy(compile: bool):
        asked.append(compile)
        return _body_forward  # eager here: the wiring is what this test checks

    monkeypatch.setattr(metatest, "body_forward", spy)
    monkeypatch.setattr("benchmark.core.train.body_forward", lambda compile: _body_forward)  # no compiling here
    monkeypatch.setattr("benchmark.runtime.execute.check_compile", lambda device: None)
    run(tmp_path, "c", "runner.compile=true", "train.steps=4", "metatest.steps=2")
    assert asked and set(asked) == {True}
    asked.clear()
    run(tmp_path, "e", "train.steps=4", "metatest.steps=2")
    assert asked and set(asked) == {False}
