"""Sweeps: grid expansion, validation before anything runs, the local launcher (idempotent,
failure-tolerant, safe when many runs share one results dir) and ``--status``."""
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from benchmark.sweep import main
from benchmark.sweeps import launchers
from benchmark.sweeps.grid import compose_runs, expand, load_grid
from benchmark.sweeps.states import state
from helpers import ROOT
from methods import METHODS

TOY = ["suite=toy", "runner.threads=1", "train.steps=10", "metatest.steps=5"]


def write_grid(tmp_path, **grid) -> str:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def points(spec, *cli):
    return expand(load_grid(spec, list(cli)))


def test_axes_expand_to_their_product_with_per_method_overrides(tmp_path):
    spec = write_grid(tmp_path, axes={"method": ["ours", "reptile"], "seed": [0, 1, 2]}, overrides=["suite=toy"],
                      per_method={"reptile": ["method.reset_every=100"]})
    got = points(spec)
    assert [p[0] for p in got] == [{"method": m, "seed": s} for m in ("ours", "reptile") for s in "012"]
    assert got[0][1] == ["suite=toy", "method=ours", "seed=0"]
    assert got[3][1] == ["suite=toy", "method.reset_every=100", "method=reptile", "seed=0"]


def test_command_line_axes_and_overrides_replace_the_grids(tmp_path):
    spec = write_grid(tmp_path, axes={"method": ["ours", "reptile"], "seed": [0, 1, 2]},
                      per_method={"reptile": ["method.reset_every=100"]})
    assert [p[0]["seed"] for p in points(spec, "seed=5,6")] == ["5", "6"] * 2  # an axis replaces the axis
    fixed = points(spec, "seed=7")  # a plain value removes the axis
    assert [p[0] for p in fixed] == [{"method": "ours"}, {"method": "reptile"}]
    assert all("seed=7" in p[1] for p in fixed)
    # A new axis multiplies; an axis over a per-method key wins over the per-method value.
    swept = points(spec, "method.reset_every=5,10", "train.steps=range(1,3)")
    assert len(swept) == 2 * 3 * 2 * 2
    reptile = [p[1] for p in swept if p[0]["method"] == "reptile"]
    assert all("method.reset_every=100" not in ovs and ovs.count("train.steps=1") + ovs.count("train.steps=2") == 1
               for ovs in reptile)
    assert points("-", "method=ours,reptile", "seed=0,1", "suite=toy")[1] == ({"method": "ours", "seed": "1"},
                                                                            ["method=ours", "seed=1", "suite=toy"])


def test_yaml_values_become_hydra_syntax(tmp_path):
    spec = write_grid(tmp_path, axes={"suite.sources": [["toy_a", "toy_b"], ["toy_c"]], "train.nesterov": [True]},
                      overrides=["suite=toy"])
    runs = compose_runs(points(spec))
    assert [r.dir.config["suite"]["sources"] for r in runs] == [["toy_a", "toy_b"], ["toy_c"]]
    assert all(r.dir.config["train"]["nesterov"] is True for r in runs)


def test_points_naming_one_run_folder_are_one_run():
    runs = compose_runs(points("-", "suite=toy", "runner.threads=1,2", "seed=0,1"))  # runner.* is not identity
    assert len(runs) == 2 and len({r.dir.id for r in runs}) == 2


@pytest.mark.parametrize("args,key", [
    (["method.nokey=1"], "method.nokey"),
    (["train.steps=10,0"], "train.steps"),  # bad in one run only: still nothing runs
    (["method=ours,nomethod"], "method: unknown choice 'nomethod'"),
    (["slurm.bogus=1"], "slurm.bogus"),
    (["slurm.time_min=-1"], "slurm.time_min"),
    (["local.jobs=x"], "local.jobs"),
    (["launcher=slurm", "method.nokey=1"], "method.nokey"),  # fails before it looks for SLURM
])
def test_a_bad_key_fails_the_whole_sweep_before_anything_runs(tmp_path, capsys, args, key):
    code = main(["-", "suite=toy", "method=ours,reptile", *args, f"results_dir={tmp_path}"])
    assert code == 2
    assert key in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_slurm_launcher_without_slurm_submits_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    assert main(["-", "suite=toy", "seed=0,1", f"results_dir={tmp_path}", "launcher=slurm"]) == 2
    assert "no SLURM here" in capsys.readouterr().err
    assert not (tmp_path / "toy").exists() and not launchers.records_path(tmp_path).exists()


@pytest.mark.parametrize("grid,key", [({"axis": {"seed": [0]}}, "axis"), ({"per_method": {"nope": []}}, "nope"),
                                      ({"axes": {"seed": 3}}, "axes.seed")])
def test_a_bad_grid_names_its_key(tmp_path, capsys, grid, key):
    assert main([write_grid(tmp_path, **grid), "suite=toy"]) == 2
    assert key in capsys.readouterr().err


def test_shipped_grids_load():
    assert len(points("core")) == len(METHODS) * 5  # every registered method x the 5 report seeds
    assert len(points("paper")) == 4 * 3 and all("runner.world_size=8" in p[1] for p in points("paper"))
    assert load_grid("paper", []).slurm.gpus_per_task == 1


def test_local_sweep_runs_once_then_reports_done(tmp_path, capsys):
    args = ["-", *TOY, "method=ours,reptile", "method.reset_every=5", "seed=0,1", f"results_dir={tmp_path}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 to run here" in out and "4 of 4 runs ok" in out
    done = sorted(tmp_path.glob("toy/*/*/done"))
    assert len(done) == 4 and len(list(tmp_path.glob("logs/*.log"))) == 4
    mtimes = [p.stat().st_mtime_ns for p in done]

    assert main(args) == 0
    assert "4 runs: 4 done; 0 to run here" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in done] == mtimes

    assert main(["-", *TOY, "method=ours,reptile", "method.reset_every=5", "seed=0,1,2", f"results_dir={tmp_path}",
                 "--status"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["ours"], ["reptile"])]
    assert sorted((r[0], r[1], r[3]) for r in rows) == sorted(
        [(m, s, "done") for m in ("ours", "reptile") for s in "01"] + [("ours", "2", "missing"), ("reptile", "2", "missing")])
    assert not list(tmp_path.glob("toy/*/*/*2"))  # --status starts nothing


def test_a_failing_run_does_not_stop_the_others(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LSML_FAULT", "0:6")  # every run raises at step 6: only the 10-step one gets there
    args = ["-", *TOY, "train.steps=5,10", f"results_dir={tmp_path}"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "failed (exit 1)" in out and "injected fault at step 6" in out and "1 of 2 runs ok" in out
    assert len(list(tmp_path.glob("toy/*/*/done"))) == 1

    assert main([*args, "--status"]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "injected fault at step 6" in out


def hold_lock(run):
    """A real process that holds the run's lock until killed, as a live run does."""
    path = run.dir.lock_path
    path.parent.mkdir(parents=True, exist_ok=True)
    code = (f"import fcntl, sys, time; f = open({str(path)!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_states_from_folders_locks_and_records(tmp_path):
    (run,) = compose_runs(points("-", "suite=toy", f"results_dir={tmp_path}"))
    assert state(run, None)[0] == "missing"
    run.dir.checkpoints.mkdir(parents=True)
    (run.dir.checkpoints / "resume.json").write_text('{"step": 5, "world_size": 1, "files": {}}')
    assert state(run, None) == ("resumable", "resumes from step 5")  # crashed, whatever started it
    holder = hold_lock(run)
    try:
        assert state(run, None) == ("running", "a live process holds the run's lock")
    finally:
        holder.kill()
        holder.wait()
    assert state(run, None)[0] == "resumable"  # the kernel dropped the dead holder's lock
    launchers.log_path(run).parent.mkdir(parents=True)
    launchers.log_path(run).write_text("boom\n")
    assert state(run, None) == ("failed", "resumes from step 5")  # a sweep started it; it resumes next time
    launchers.log_path(run).write_text("step 5\n12:00:01 WARNING signal SIGTERM: checkpoint written, stopping\n")
    assert state(run, None) == ("stopped", "resumes from step 5")  # a signal, not a failure
    (run.dir.checkpoints / "resume.json").write_text('{"step": 5, "wor')  # damaged: named, no crash
    assert state(run, None) == ("failed", f"damaged checkpoint pointer in {run.dir.checkpoints}: restarts from step 0")
    launchers.records_path(tmp_path).parent.mkdir()
    launchers.records_path(tmp_path).write_text(json.dumps({run.dir.id: {"job_id": "7_1", "stderr": "x"}}))
    assert state(run, {"7_1": "PENDING"}) == ("running", "job 7_1 PENDING")
    assert state(run, {})[0] == "failed"
    assert state(run, None)[0] == "submitted"  # no squeue to ask
    (run.dir.path / "diverged").write_text("")
    (run.dir.path / "summary.json").write_text(json.dumps(
        {"status": "diverged", "diverged": {"stage": "meta-train", "step": 3, "task": "toy_b", "what": "loss"}}))
    assert state(run, {}) == ("diverged", "non-finite loss at meta-train step 3 on toy_b")
    (run.dir.path / "summary.json").write_text("{")
    assert state(run, {})[0] == "diverged"  # a damaged summary is named, never a crash
    (run.dir.path / "diverged").unlink()
    (run.dir.path / "done").write_text("")
    assert state(run, {"7_1": "RUNNING"})[0] == "done"


def test_a_sweep_resumes_a_crashed_run_that_was_started_by_hand(tmp_path, capsys):
    """Killed at step 23 of 40 with a checkpoint every 5 steps: the sweep, not the hand, resumes
    it, from step 20, and ends bit-identical to a run never interrupted."""
    args = [*TOY, "train.steps=40", "checkpoint.every=5"]
    env = {**os.environ, "LSML_FAULT": "0:23"}
    crash = subprocess.run([sys.executable, "-m", "benchmark.run", *args, f"results_dir={tmp_path / 'cut'}"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
    assert crash.returncode == 1 and "injected fault at step 23" in crash.stderr
    assert main(["-", *args, f"results_dir={tmp_path / 'cut'}", "--status"]) == 0
    assert "resumable" in capsys.readouterr().out
    assert main(["-", *args, f"results_dir={tmp_path / 'cut'}"]) == 0
    out = capsys.readouterr().out
    assert "1 to run here" in out and "1 of 1 runs ok" in out
    (log,) = (tmp_path / "cut" / "logs").glob("*.log")
    assert "from step 20" in log.read_text()
    assert main(["-", *args, f"results_dir={tmp_path / 'full'}"]) == 0
    (cut,) = (tmp_path / "cut").rglob("phi_final.pt")
    (full,) = (tmp_path / "full").rglob("phi_final.pt")
    a, b = torch.load(cut), torch.load(full)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_diverged_run_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    args = ["-", *TOY, "train.inner_lr=0.05,0.1,1e4", f"results_dir={tmp_path}"]
    assert main(args) == 3  # EXIT_DIVERGED: nothing failed, one run diverged
    out = capsys.readouterr().out
    assert "2 of 3 runs ok, 1 diverged" in out and "error: diverged: non-finite" in out
    assert len(list(tmp_path.glob("toy/*/*/done"))) == 2 and len(list(tmp_path.glob("toy/*/*/diverged"))) == 1
    assert main([*args, "--status"]) == 0
    out = capsys.readouterr().out
    assert "3 runs: 1 diverged, 2 done" in out and "non-finite" in out
    assert main(args) == 0  # nothing to run: a diverged run is finished
    assert "0 to run here" in capsys.readouterr().out


def test_twelve_concurrent_runs_leave_twelve_intact_folders(tmp_path, capsys):
    assert main(["-", *TOY, "seed=range(0,12)", "local.jobs=12", f"results_dir={tmp_path}"]) == 0
    assert "12 of 12 runs ok" in capsys.readouterr().out
    folders = sorted(p for p in tmp_path.glob("toy/ours/*") if p.is_dir())
    assert len(folders) == 12
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".*.tmp"))
    for folder in folders:
        assert (folder / "done").exists()
        assert json.loads((folder / "summary.json").read_text())["run_id"] == folder.name
        assert all(json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines())
        assert yaml.safe_load((folder / "config.yaml").read_text())["seed"] in range(12)
    assert len({json.loads((f / "summary.json").read_text())["seed"] for f in folders}) == 12


def test_the_grid_module_composes_the_runs_a_hand_composition_gives():
    """core and paper: every point is the grid's overrides, then its method's, then its axis
    values, composed once each; the same runs, in the same order, as composing those by hand."""
    from benchmark.compose import compose_config
    from benchmark.runtime.storage import RunDir as Folder
    from omegaconf import OmegaConf

    for name in ("core", "paper"):
        grid = yaml.safe_load((ROOT / "benchmark" / "conf" / "grid" / f"{name}.yaml").read_text())
        want = []
        for method in grid["axes"]["method"]:
            for seed in grid["axes"]["seed"]:
                overrides = [*grid.get("overrides", []), *(grid.get("per_method") or {}).get(method, []),
                             f"method={method}", f"seed={seed}"]
                cfg = compose_config(overrides)
                want.append(Folder(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)).id)
        assert [r.dir.id for r in compose_runs(points(name))] == want, name
