"""Every bad input is one line naming the key, file or path, exit code 2, before any compute,
and nothing written: one table, so that the next probe adds rows, not tests.

A row is (module, arguments, a fragment the message must hold, exit code). Arguments may
name ``{out}`` (this row's own results folder, empty), ``{file}`` (a plain file), ``{ro}`` (a
folder on a read-only file system) and the prepared inputs below (``{grid_hello}``,
``{sel_dup}``, ``{run}``...). Rows run in this process, as ``python -m <module>`` would
(``runpy``: the module's ``__main__`` block, ``sys.exit`` included), which costs a fraction of
a second instead of a fresh interpreter importing torch; ``test_the_table_runs_as_commands``
runs a few rows as real commands to show that both agree.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import ROOT

sys.path.insert(0, str(ROOT))  # rows run from their own folder: the project stays importable
sys.path.insert(0, str(ROOT / "tests" / "tasks"))
import dataset_fixtures as fx  # noqa: E402
from PIL import Image  # noqa: E402

RUN = "benchmark.run"
SWEEP = "benchmark.sweep"
TUNE = "benchmark.tune"
EPISODES = "benchmark.episodes"
REPORT = "analysis.report"
TOY = ["suite=toy", "train.steps=2", "metatest.steps=1", "runner.threads=1", "results_dir={out}"]
TUNE_TOY = ["--status", "method=ours", "trials=1", *TOY]


def row(module, args, fragment, code=2, marks=()):
    return pytest.param(module, args, fragment, code, marks=marks,
                        id=f"{module.rsplit('.', 1)[-1]} {' '.join(a for a in args if a not in TOY + TUNE_TOY)}")


def run(*args, fragment, marks=()):
    flags = list(args[:2]) if args[0].startswith("--") else []  # Hydra's flags come before the overrides
    return row(RUN, [*flags, *TOY, *args[len(flags):]], fragment, marks=marks)


def sweep(*args, fragment, grid="-", marks=()):
    return row(SWEEP, [grid, "--status", *TOY, *args], fragment, marks=marks)


def tune(*args, fragment, marks=()):
    return row(TUNE, [*TUNE_TOY, *args], fragment, marks=marks)


def episodes(*args, fragment, folder="{run}"):
    return row(EPISODES, [folder, *args], fragment)


def report(*args, fragment, results="{results}"):
    return row(REPORT, [results, *args], fragment)


ROWS = [
    # -- values a run cannot use
    run("results_dir=", fragment="results_dir"),
    run("seed=99999999999999999999", fragment="seed"),
    run("seed=9223372036854775808", fragment="seed"),
    run("seed=-1", fragment="seed"),
    run("metatest.at_steps=[1,1]", fragment="metatest.at_steps"),
    run("metatest.train_sizes=[2,2]", fragment="metatest.train_sizes"),
    run("metatest.episodes=1", "metatest.episode_shots=[1,1]", fragment="metatest.episode_shots"),
    run("method.meta_lr=inf", fragment="method.meta_lr"),
    run("method.meta_lr=-inf", fragment="method.meta_lr"),
    run("method.meta_lr=nan", fragment="method.meta_lr"),
    run("train.inner_lr=nan", fragment="train.inner_lr"),
    run("train.inner_lr=inf", fragment="train.inner_lr"),
    run("train.momentum=nan", fragment="train.momentum"),
    run("train.weight_decay=inf", fragment="train.weight_decay"),
    run("metatest.lr=inf", fragment="metatest.lr"),
    run("metatest.gamma=nan", fragment="metatest.gamma"),
    run("metatest.milestones=[0.5,nan]", fragment="metatest.milestones"),
    run("metatest.episode_lr=inf", fragment="metatest.episode_lr"),
    run("runner.timeout=inf", fragment="runner.timeout"),
    run("data.test_fraction=nan", fragment="data.test_fraction"),
    run("train.steps=0", fragment="train.steps"),
    run("metatest.at_steps=[0]", fragment="metatest.at_steps"),
    run("metatest.at_steps=[99]", fragment="metatest.at_steps"),
    run("runner.world_size=0", fragment="runner.world_size"),
    run("runner.device=tpu", fragment="runner.device"),
    run("data.channels=2", fragment="data.channels"),
    run("log.level=LOUD", fragment="log.level"),
    run("metatest.train_sizes=[1000]", fragment="metatest.train_sizes"),
    run("metatest.episodes=1", "metatest.episode_ways=50", fragment="metatest.episode_ways"),
    run("suite.targets=[toy_e,toy_e]", fragment="suite.targets"),
    # -- paths that cannot be written
    run("results_dir={file}", fragment="results_dir"),
    run("results_dir={ro}/results", fragment="results_dir"),
    run("results_dir={locks_file}", fragment=".locks"),
    run("results_dir={logs_file}", fragment="logs"),
    run("results_dir={suite_file}", fragment="toy"),
    run("results_dir={run_file}", fragment="{run_id}"),
    run("data.cache_dir={ro}/cache", fragment="data.cache_dir"),
    run("data.cache_dir={file}", fragment="data.cache_dir"),
    run("data.cache_dir=", fragment="data.cache_dir"),
    run("suite.targets=[folder:{missing}]", fragment="{missing}"),
    # -- image folders whose images cannot be used: refused at validation, or when the cache is built
    run("suite.targets=[toy_e,folder:{cut_jpg}]", "data.channels=3", fragment="{cut_jpg_file}"),
    run("suite.targets=[toy_e,folder:{cut_png}]", "data.channels=3", fragment="{cut_png_file}"),
    run("suite.targets=[toy_e,folder:{float_tif}]", "data.channels=3", fragment="{float_tif_file}"),
    run("suite.targets=[toy_e,folder:{int_tif}]", "data.channels=3", fragment="{int_tif_file}"),
    # -- suite files that are not YAML, or not a suite
    run("--config-dir", "{suite_dir}", "suite=bracket", fragment="bracket.yaml"),
    run("--config-dir", "{suite_dir}", "suite=toplist", fragment="toplist.yaml"),
    run("--config-dir", "{suite_dir}", "suite=hello", fragment="hello.yaml"),
    run("--config-dir", "{suite_dir}", "suite=unknown", fragment="suite.sourcez"),
    # -- Hydra's own errors (an unknown key, choice or type), in one line too
    run("train.stepz=20", fragment="train.stepz: unknown key"),
    run("method=reptil", fragment="method: unknown choice 'reptil'; valid:"),
    run("train.steps=abc", fragment="train.steps: must be an integer"),
    run("method=reptile", "train.steps=20", "method.reset_every=100", fragment="method.reset_every"),
    # -- sweeps: grid files, selections, and the run values above
    sweep(grid="{grid_bracket}", fragment="grid_bracket.yaml"),
    sweep(grid="{grid_list}", fragment="grid_list.yaml"),
    sweep(grid="{grid_hello}", fragment="grid_hello.yaml"),
    sweep(grid="{grid_string}", fragment="overrides"),
    sweep(grid="{grid_per_method}", fragment="per_method.ours"),
    sweep(grid="{grid_axes}", fragment="axes.seed"),
    sweep(grid="{grid_unknown}", fragment="axez"),
    sweep(grid="{grid_per_method_list}", fragment="per_method"),
    sweep(grid="{grid_slurm}", fragment="slurm"),
    sweep(grid="no_such_grid", fragment="no_such_grid"),
    sweep("--config-dir", "{suite_dir}", "suite=bracket", fragment="bracket.yaml"),
    sweep("hparams={sel_dup}", "seed=5", fragment="zz.yaml"),
    sweep("hparams={sel_seed}", "seed=5", fragment="seed"),
    sweep("hparams={sel_key}", "seed=5", fragment="sel_key/ours.yaml"),
    sweep("hparams={sel_value}", "seed=5", fragment="sel_value/ours.yaml"),
    sweep("hparams={sel_list}", "seed=5", fragment="sel_list/ours.yaml"),
    sweep("hparams={file}", fragment="hparams"),
    sweep("results_dir=", fragment="results_dir"),
    sweep("seed=99999999999999999999", fragment="seed"),
    sweep("metatest.at_steps=[1,1]", fragment="metatest.at_steps"),
    sweep("method.meta_lr=inf", fragment="method.meta_lr"),
    sweep("results_dir={logs_file}", fragment="logs"),
    row(SWEEP, ["-", *TOY, "results_dir={run_file}"], "{run_id}"),
    row(TUNE, ["method=ours", "trials=1", "seeds=[100]", *TOY, "results_dir={suite_file}"], "suite_file/toy"),
    sweep("local.jobs=-1", fragment="local.jobs"),
    sweep("slurm.partitionz=x", fragment="slurm.partitionz"),
    # -- tunes
    tune("seeds=[-1]", fragment="seeds"),
    tune("seeds=[99999999999999999999]", fragment="seeds"),
    tune("seeds=[1]", fragment="seeds"),
    tune("trials=0", fragment="trials"),
    tune("--config-dir", "{suite_dir}", "suite=bracket", fragment="bracket.yaml"),
    tune("train.inner_lr=inf", fragment="train.inner_lr"),
    tune("results_dir=", fragment="results_dir"),
    tune("metatest.at_steps=[1,1]", fragment="metatest.at_steps"),
    tune("seed=3", fragment="seed"),
    # -- benchmark.episodes on a finished run
    episodes("metatest.episodes=0", fragment="metatest.episodes"),
    episodes("metatest.episode_shot=5", fragment="metatest.episode_shot"),
    episodes("metatest.episode_ways=1", fragment="metatest.episode_ways"),
    episodes("metatest.episode_lr=inf", fragment="metatest.episode_lr"),
    episodes("metatest.episode_shots=[1,1]", fragment="metatest.episode_shots"),
    episodes("metatest.episode_ways=50", fragment="metatest.episode_ways"),
    episodes("train.steps=3", fragment="train.steps"),
    episodes(folder="{out}", fragment="{out}"),
    episodes("log.level=LOUD", fragment="log.level"),
    # -- analysis.report
    report(results="{missing}", fragment="{missing}"),
    report(results="{file}", fragment="{file}"),
    report("--out", "{file}", fragment="{file}"),
    report("--out", "{ro}/report", fragment="{ro}"),
    report("--out", "{file}/report", fragment="{file}"),
    report("--tune", "{missing}", fragment="{missing}"),
]


# ---------------------------------------------------------------- the inputs the rows name
SELECTION = {"method": "ours", "suite": "toy", "overrides": ["method.meta_lr=0.1"], "tuning_seeds": [100]}


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _selection(folder: Path, **files: dict) -> str:
    for name, record in files.items():
        _write(folder / f"{name}.yaml", record if isinstance(record, str) else yaml.safe_dump(record))
    return str(folder)


@contextlib.contextmanager
def read_only_folder(path: Path):
    """A folder that nobody may write, root included: a read-only tmpfs where this process may
    mount one (root), else a folder without write permission; None if neither holds."""
    path.mkdir()
    mounted = False
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
                                 capture_output=True).returncode == 0
    else:
        path.chmod(0o555)
    try:
        yield path if (mounted or os.geteuid() != 0) else None
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=False)
        path.chmod(0o755)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from benchmark.runtime.execute import execute
    from benchmark.runtime.storage import RunDir
    from helpers import make_config
    from omegaconf import OmegaConf

    base = tmp_path_factory.mktemp("inputs")
    places = {"file": _write(base / "a_file", "not a folder\n"), "missing": str(base / "missing")}
    for name in ("locks", "logs"):
        places[f"{name}_file"] = str(base / name)
        _write(base / name / (".locks" if name == "locks" else "logs"), "a file\n")
    places["suite_file"] = str(base / "suite_file")
    _write(base / "suite_file" / "toy", "a file\n")
    cfg = make_config(*[a for a in TOY if not a.startswith("results_dir")], f"results_dir={base / 'run_file'}")
    folder = RunDir(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
    places["run_file"], places["run_id"] = str(base / "run_file"), folder.id
    _write(folder.path, "a file\n")

    suites = base / "suites" / "suite"
    _write(suites / "bracket.yaml", "sources: [toy_a, toy_b\ntargets: [toy_e]\n")
    _write(suites / "toplist.yaml", "- toy_a\n- toy_b\n")
    _write(suites / "hello.yaml", "hello\n")
    _write(suites / "unknown.yaml", "sourcez: [toy_a]\ntargets: [toy_e]\n")
    places["suite_dir"] = str(base / "suites")
    grids = {"grid_bracket": "axes: {seed: [0, 1\n", "grid_list": "- seed\n- method\n", "grid_hello": "hello\n",
             "grid_string": "overrides: train.steps=10\n", "grid_per_method": "per_method: {ours: train.steps=10}\n",
             "grid_axes": "axes: {seed: 3}\n", "grid_unknown": "axez: {seed: [0]}\n",
             "grid_per_method_list": "per_method: [ours]\n", "grid_slurm": "slurm: gpu\n"}
    for name, text in grids.items():
        places[name] = _write(base / "grids" / f"{name}.yaml", text)
    sel = base / "selections"
    places["sel_dup"] = _selection(sel / "sel_dup", ours=SELECTION, zz=SELECTION)
    places["sel_seed"] = _selection(sel / "sel_seed", ours={**SELECTION, "overrides": ["seed=100"]})
    places["sel_key"] = _selection(sel / "sel_key", ours={**SELECTION, "overrides": ["method.meta_lrr=0.1"]})
    places["sel_value"] = _selection(sel / "sel_value", ours={**SELECTION, "overrides": ["method.meta_lr=[1"]})
    places["sel_list"] = _selection(sel / "sel_list", ours="- method.meta_lr=0.1\n")

    images = base / "images"
    for case in ("cut_jpg", "cut_png", "float_tif", "int_tif"):
        root = fx.write_image_folder(images / case, classes=2, train=2, test=1)
        kind = case.split("_")[1]
        if case.startswith("cut"):
            path = sorted((root / "train" / "class_1").glob(f"*.{kind}"))[0]
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            path = root / "train" / "class_1" / "deep.tif"
            pixels = np.arange(64, dtype=np.float32 if case == "float_tif" else np.int32).reshape(8, 8)
            Image.fromarray(pixels, "F" if case == "float_tif" else "I").save(path)
        places[case], places[f"{case}_file"] = str(root), str(path)
    results = base / "results"
    done = execute(make_config(*[a for a in TOY if not a.startswith("results_dir")], f"results_dir={results}"),
                   progress=False)
    places["results"], places["run"] = str(results), str(done.path)
    with read_only_folder(base / "ro") as ro:
        places["ro"] = str(ro) if ro else None
        yield places


def invoke(module: str, args: list[str], cwd: Path) -> tuple[int, str, str]:
    """``python -m <module> <args>`` run in this process from ``cwd``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv, here = sys.argv, os.getcwd()
    sys.argv = [module, *args]
    code = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # runpy: "found in sys.modules", as intended
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:  # noqa: BLE001  (a traceback, as the command would print)
                import traceback

                traceback.print_exc(file=err)
                code = 1
    finally:
        sys.argv = argv
        os.chdir(here)
    return code, out.getvalue(), err.getvalue()


def fill(args: list[str], places: dict, out: Path) -> list[str]:
    if any("{ro}" in a for a in args) and places["ro"] is None:
        pytest.skip("no read-only file system here (root without mount)")
    return [a.format(out=out, **places) for a in args]


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def check(code: int, stderr: str, fragment: str, expected: int) -> None:
    # Progress messages (INFO: a cache being built, where a truncated image is found) are not errors.
    lines = [line for line in stderr.splitlines() if line.strip() and not re.match(r"\d\d:\d\d:\d\d INFO ", line)]
    assert "Traceback" not in stderr, stderr
    assert code == expected, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one line:\n{stderr}"
    assert fragment in lines[0], f"{fragment!r} not named in: {lines[0]}"


@pytest.mark.parametrize("module,args,fragment,code", ROWS)
def test_a_bad_input_is_one_line_and_writes_nothing(module, args, fragment, code, inputs, tmp_path, monkeypatch):
    out, cwd = tmp_path / "out", tmp_path / "cwd"
    out.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("LSML_CACHE", str(tmp_path / "cache"))
    got, _, stderr = invoke(module, fill(args, inputs, out), cwd)
    check(got, stderr, fragment.format(out=out, **inputs), code)
    assert written(out) == [] and written(cwd) == [], "a refused command wrote files"
    assert not (tmp_path / "cache").exists()


def test_the_table_has_sixty_rows_or_more():
    assert len(ROWS) >= 60


AS_COMMANDS = ["run results_dir=", "run suite.targets=[toy_e,folder:{cut_png}] data.channels=3", "sweep {grid_hello}",
               "tune seeds=[-1]", "episodes {run} metatest.episodes=0", "report {results} --out {file}"]


@pytest.mark.parametrize("name", AS_COMMANDS)
def test_the_table_runs_as_commands(name, inputs, tmp_path):
    """A few rows as real ``python -m`` processes: the same line and exit code as in-process."""
    (module, args, fragment, code), = [r.values for r in ROWS if r.id == name]
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", module, *fill(args, inputs, out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    check(proc.returncode, proc.stderr, fragment.format(out=out, **inputs), code)
    assert written(out) == []
