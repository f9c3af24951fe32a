"""Hyperparameter selection: the tune's plan and refusals, run rows with a role, selection on
validation accuracy only, resume, and ``sweep ... hparams=`` (the draws: tests/methods/test_search.py).

One tiny tune (ours, 3 trials, seed 100) is shared by the module; tests that change its
folders work on a copy (run ids leave results_dir out, so a copied folder is the same runs)."""
import contextlib
import dataclasses
import io
import json
import shutil

import pytest
import yaml

from benchmark.compose import compose_config
from benchmark.runtime.execute import execute
from benchmark.sweeps import selection
from benchmark.sweeps.grid import GridError, check_selected, compose_points, compose_runs, expand, load_grid
from benchmark.sweeps.selection import SelectionError, Trial, read_dir, selection_record
from benchmark.sweeps.tuning import plan, trials_of
from benchmark.tune import main
from helpers import ROOT
from methods import METHODS
from methods.search import Choice, draws, resolve

TINY = ["suite=toy", "runner.threads=1", "train.steps=10", "metatest.steps=3"]
OURS = METHODS.get("ours")


def tune(results, *extra) -> tuple[int, str]:
    """Run the tiny 3-trial tune of ours into ``results``: (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["method=ours", "trials=3", "seeds=[100]", *TINY, f"results_dir={results}", *extra])
    return code, out.getvalue()


def selection_of(results) -> dict:
    return yaml.safe_load((results / "selected" / "toy" / "ours.yaml").read_text())


def values(overrides: list[str]) -> dict:
    """``["method.meta_lr=0.1", ...]`` -> ``{"meta_lr": 0.1, ...}``."""
    return {o.partition("=")[0].removeprefix("method."): yaml.safe_load(o.partition("=")[2]) for o in overrides}


def run_folders(results) -> dict[str, dict]:
    """run id -> its config.yaml and summary.json, read straight from the folders."""
    return {p.name: {"config": yaml.safe_load((p / "config.yaml").read_text()),
                     "summary": json.loads((p / "summary.json").read_text()), "path": p}
            for p in sorted((results / "toy" / "ours").iterdir())}


def defaults(entry) -> dict:
    """The tuned keys' defaults, as the method's config class declares them."""
    return {f.name: f.default for f in dataclasses.fields(entry.config) if f.name in entry.search}


def trial_of(config: dict, results) -> int:
    """Which of the 3 trials a run's config is, from the tune's own table of trials."""
    table = selection_of(results)["table"]
    (t,) = [row["trial"] for row in table if all(config["method"][k] == v for k, v in values(row["overrides"]).items())]
    return t


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    results = tmp_path_factory.mktemp("tune")
    code, out = tune(results)
    assert code == 0, out
    return results, out


def copy_of(tuned, tmp_path):
    results = tmp_path / "copy"
    shutil.copytree(tuned[0], results)
    return results


def test_the_registry_refuses_a_search_key_its_config_lacks():
    from methods.base import register_method

    with pytest.raises(ValueError, match="not_a_key"):
        register_method("nope", display="Nope", config=OURS.config, search={"not_a_key": Choice(1)})
    assert "nope" not in METHODS


# ---------------------------------------------------------------- plan and refusals
def test_plan_gives_every_method_the_same_number_of_distinct_draws_on_two_tuning_seeds(tmp_path):
    shared = ["suite=toy", f"results_dir={tmp_path}", "train.steps=400"]
    request, runs, _ = plan({"method": "ours,imaml,scratch", "trials": "3"}, shared)
    assert request.seeds == [100, 101] and not request.include_default
    assert len(runs) == 3 * 3 * 2
    assert [r.axes for r in runs[:4]] == [{"method": "ours", "trial": t, "seed": s}
                                          for t in "01" for s in ("100", "101")]
    trials = trials_of(request, runs)
    assert {m: len(ts) for m, ts in trials.items()} == {"ours": 3, "imaml": 3, "scratch": 3}
    assert all(set(t.run_ids) == {100, 101} for ts in trials.values() for t in ts)
    for name in ("ours", "imaml"):
        entry, ts = METHODS.get(name), trials[name]
        space = resolve(entry.search, 400)
        assert [values(t.overrides) for t in ts] == draws(space, request_key(request, name), 3)
        assert len({tuple(t.overrides) for t in ts}) == 3
        assert all(values(t.overrides) != defaults(entry) for t in ts)  # no trial is the default
    assert trials["scratch"][0].run_ids == trials["scratch"][1].run_ids  # nothing to tune: one run per seed


def test_a_tune_shorter_than_the_default_reset_period_draws_within_the_horizon(tmp_path):
    """The defaults are only a base: Reptile's default K (25 on glyphs) exceeds train.steps = 20, where
    a single run is refused (phi would never move), but a tune draws K from the ladder capped at
    train.steps / 2 and plans every trial; a K given on the command line is still checked."""
    shared = [f"results_dir={tmp_path}", "train.steps=20", "metatest.steps=3", "runner.threads=1"]
    assert compose_config(["method=reptile"]).method.reset_every > 20
    request, runs, _ = plan({"method": "reptile", "trials": "8"}, shared)
    ks = {o for r in runs for o in r.overrides if o.startswith("method.reset_every=")}
    assert ks == {"method.reset_every=10"} and len(runs) == 16 and len({tuple(d) for d in request.drawn["reptile"]}) == 8
    with pytest.raises(GridError, match="phi would never move"):
        plan({"method": "reptile,ours", "trials": "2"}, [*shared, "method.reset_every=30"])


def request_key(request, name):
    return selection.experiment_key(request.suite, name, request.experiments[name])


def test_include_default_makes_trial_zero_the_default_and_the_file_says_so(tmp_path):
    shared = ["suite=toy", f"results_dir={tmp_path}", "train.steps=400"]
    request, runs, _ = plan({"method": "ours", "trials": "3", "include_default": "true"}, shared)
    ts = trials_of(request, runs)["ours"]
    assert values(ts[0].overrides) == defaults(OURS)
    assert values(ts[0].overrides) not in [values(t.overrides) for t in ts[1:]]
    plain = compose_points([({}, [*shared, "method=ours", f"seed={s}"]) for s in (100, 101)])
    assert list(ts[0].run_ids.values()) == [r.dir.id for r in plain]  # the very run a plain run names
    rows = [Trial(t, [], {100: "a", 101: "b"}, {100: v, 101: v}) for t, v in ((0, 0.6), (1, 0.5))]
    record = selection_record("ours", "toy", rows, rows[0], [100, 101], {}, ["toy_v"], [], include_default=True)
    assert record["include_default"] is True


def test_draws_change_with_the_horizon_and_not_with_targets_paths_or_runner(tmp_path):
    def drawn(*extra):
        request, _, _ = plan({"method": "ours,reptile", "trials": "4"}, ["suite=toy", *extra])
        return request.drawn

    base = drawn("train.steps=400", f"results_dir={tmp_path}")
    assert drawn("train.steps=400", f"results_dir={tmp_path / 'elsewhere'}", "runner.threads=2",
                 "checkpoint.every=7", "metatest.at_steps=[100]", "suite.targets=[toy_f]") == base
    other = drawn("train.steps=410", f"results_dir={tmp_path}")
    for name in ("ours", "reptile"):
        assert not set(map(tuple, other[name])) & set(map(tuple, base[name])), name
    assert drawn("train.steps=400", "model.width=8", f"results_dir={tmp_path}") != base
    assert drawn("train.steps=400", "suite.validation=[toy_f]", "suite.targets=[toy_e]",
                 f"results_dir={tmp_path}") != base


@pytest.mark.parametrize("args,named", [
    (["method=ours", "seeds=[3,100]"], "[3]"),
    (["method=ours", "seeds=[100]", "report_seeds=101"], "[100]"),
    (["method=ours", "seed=5"], "seed"),
    (["method=ours", "method.meta_lr=0.1", "method.reset_every=5"], "nothing is left to tune"),
    (["method=ours", "include_default=maybe"], "include_default"),
    (["method=reptile,imaml", "method.reg_lambda=1.0"], "method.reg_lambda"),
    (["method=nomethod"], "nomethod"),
    (["method=ours", "suite.validation=[]"], "suite.validation"),
    (["method=ours", "trials=0"], "trials"),
    (["method=ours", "seeds=[100,100]"], "seeds"),
    (["method=ours", "train.steps=5,10"], "train.steps"),
    (["method=ours", "method.nokey=1"], "method.nokey"),  # a Hydra error, not a ValueError
    (["method=ours", "model=nomodel"], "nomodel"),
    (["method=ours", "trials=3,4"], "trials"),
    (["method=ours", "hparams=benchmark/conf/selected/glyphs"], "hparams"),
    (["method=ours", "launcher=bogus"], "launcher"),
])
def test_a_bad_tune_request_is_refused_before_anything_exists(tmp_path, capsys, args, named):
    results = tmp_path / "results"
    # (tiny, so that a refusal that regresses fails the test in seconds, not minutes)
    assert main(["trials=1", *TINY, *args, f"results_dir={results}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and named in err
    assert not results.exists()


def test_help_names_trials_and_seeds(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "trials=" in out and "seeds=" in out and "report_seeds" in out


# ---------------------------------------------------------------- runs: rows with a role
def test_runs_meta_test_validation_tasks_apart_from_targets(tuned):
    for run in run_folders(tuned[0]).values():
        rows = [json.loads(line) for line in (run["path"] / "metatest.jsonl").read_text().splitlines()]
        assert sorted((r["target"], r["role"]) for r in rows) == [("toy_e", "target"), ("toy_f", "target"),
                                                                   ("toy_v", "validation")]
        final = {r["target"]: r["accuracy"] for r in rows}
        s = run["summary"]
        assert s["target_accuracy"] == {"toy_e": final["toy_e"], "toy_f": final["toy_f"]}
        assert s["mean_accuracy"] == pytest.approx((final["toy_e"] + final["toy_f"]) / 2)  # toy_v is not a result
        assert s["validation_accuracy"] == {"toy_v": final["toy_v"]}
        assert s["validation_mean"] == final["toy_v"]


def test_validation_tasks_are_meta_tested_on_the_final_phi_and_on_at_steps_only_when_asked(tmp_path):
    roles = [("toy_e", "target"), ("toy_f", "target"), ("toy_v", "validation")]
    at_steps = [*TINY, f"results_dir={tmp_path}", "checkpoint.phi_every=5", "metatest.at_steps=[5]"]
    rows = execute(compose_config(at_steps), progress=False).read("metatest")
    assert sorted((str(r["phi_step"]), r["target"], r["role"]) for r in rows) == sorted(
        [("5", "toy_e", "target"), ("5", "toy_f", "target"), *(("final", t, role) for t, role in roles)])

    rows = execute(compose_config([*at_steps, "metatest.validation_at_steps=true"]), progress=False).read("metatest")
    assert sorted((str(r["phi_step"]), r["target"], r["role"]) for r in rows) == sorted(
        (step, t, role) for step in ("5", "final") for t, role in roles)

    run = execute(compose_config([*TINY, f"results_dir={tmp_path}", "suite.validation=[]"]), progress=False)
    assert {r["role"] for r in run.read("metatest")} == {"target"}
    s = run.summary()
    assert s["validation_accuracy"] == {} and s["validation_mean"] is None
    assert set(s["target_accuracy"]) == {"toy_e", "toy_f"}


# ---------------------------------------------------------------- selection
def test_a_tiny_tune_selects_the_trial_of_best_validation_mean(tuned):
    results, out = tuned
    record = selection_of(results)
    folders = run_folders(results)
    assert len(folders) == 3 and sorted(trial_of(f["config"], results) for f in folders.values()) == [0, 1, 2]
    best_id = max(folders, key=lambda i: (folders[i]["summary"]["validation_mean"],
                                          -trial_of(folders[i]["config"], results)))
    best = folders[best_id]
    assert record["trial"] == trial_of(best["config"], results)
    assert values(record["overrides"]) == {k: best["config"]["method"][k] for k in OURS.search}
    assert record["score"] == pytest.approx(best["summary"]["validation_mean"])
    assert record["table"][record["trial"]]["run_ids"] == {100: best_id}
    assert (record["trials"], record["tuning_seeds"], record["validation_tasks"]) == (3, [100], ["toy_v"])
    assert "3 to run here" in out and f"selected trial {record['trial']}" in out


def test_an_interrupted_tune_runs_only_what_is_missing(tuned, tmp_path, capsys):
    results = copy_of(tuned, tmp_path)
    assert tune(results)[0] == 0  # everything done: nothing runs; the file now names this results_dir
    before = (results / "selected" / "toy" / "ours.yaml").read_text()
    folders = run_folders(results)
    lost, *kept = folders
    mtimes = {i: (folders[i]["path"] / "summary.json").stat().st_mtime_ns for i in kept}
    shutil.rmtree(folders[lost]["path"])

    code, out = tune(results)
    assert code == 0
    # (the lost run's log is still there: the tune counts it as failed, and runs it again)
    assert "3 runs: 2 done, 1 failed; 1 to run here" in out and "1 of 1 runs ok" in out
    assert {i: (folders[i]["path"] / "summary.json").stat().st_mtime_ns for i in kept} == mtimes
    assert (folders[lost]["path"] / "done").exists()
    assert (results / "selected" / "toy" / "ours.yaml").read_text() == before


def test_selection_never_reads_target_accuracy(tuned, tmp_path):
    """Targets that rank the trials the other way round change nothing; a validation_mean does."""
    results = copy_of(tuned, tmp_path)
    chosen = selection_of(tuned[0])
    for i, run in run_folders(results).items():
        s = run["summary"]
        fake = 0.0 if i == chosen["table"][chosen["trial"]]["run_ids"][100] else 1 - s["validation_mean"]
        s["target_accuracy"] = {t: fake for t in s["target_accuracy"]}
        s["mean_accuracy"] = fake
        (run["path"] / "summary.json").write_text(json.dumps(s))
    code, out = tune(results)
    assert code == 0 and "0 to run here" in out
    again = selection_of(results)
    assert {k: v for k, v in again.items() if k != "shared_overrides"} == {
        k: v for k, v in chosen.items() if k != "shared_overrides"}

    # The rerun does read the folders: a better validation_mean elsewhere is selected.
    other = next(r for r in chosen["table"] if r["trial"] != chosen["trial"])
    path = results / "toy" / "ours" / other["run_ids"][100] / "summary.json"
    s = json.loads(path.read_text())
    path.write_text(json.dumps({**s, "validation_mean": 1.0}))
    assert tune(results)[0] == 0
    assert selection_of(results)["trial"] == other["trial"]


def test_status_starts_nothing_and_writes_nothing(tuned, tmp_path, capsys):
    selected = tuned[0] / "selected" / "toy" / "ours.yaml"
    mtime = selected.stat().st_mtime_ns
    assert main(["method=ours", "trials=3", "seeds=[100]", *TINY, f"results_dir={tuned[0]}", "--status"]) == 0
    out = capsys.readouterr().out
    assert "3 runs: 3 done" in out
    assert len([line for line in out.splitlines() if line.lstrip(" *").startswith("trial ")]) == 3
    assert selected.stat().st_mtime_ns == mtime
    assert main(["method=ours", "trials=3", "seeds=[100]", *TINY, f"results_dir={tmp_path / 'fresh'}", "--status"]) == 0
    assert "3 runs: 3 missing" in capsys.readouterr().out and not (tmp_path / "fresh").exists()


def test_an_interrupted_tune_does_not_exit_as_a_success(tmp_path, monkeypatch):
    """Ctrl-C during the runs: the sweep exits 130; so does the tune."""
    from benchmark.sweeps import launchers

    def interrupted(runs, settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(launchers, "run_local", interrupted)
    code, out = tune(tmp_path)
    assert "not selected yet" in out
    assert code == 130


@pytest.mark.slow
def test_the_targets_of_a_suite_do_not_change_its_selection(tuned, tmp_path):
    """A second tune with other targets: other run folders, the same validation scores and choice."""
    first = selection_of(tuned[0])
    code, _ = tune(tmp_path, "suite.targets=[toy_f]")
    assert code == 0
    second = selection_of(tmp_path)
    assert first["table"][0]["run_ids"] != second["table"][0]["run_ids"]
    for key in ("trial", "overrides", "score"):
        assert second[key] == first[key], key
    assert [r["score"] for r in second["table"]] == [r["score"] for r in first["table"]]


# ---------------------------------------------------------------- sweep hparams=
def test_a_sweep_with_hparams_runs_each_method_at_its_selection(tuned, tmp_path):
    folder = tuned[0] / "selected" / "toy"
    selected = selection_of(tuned[0])["overrides"]
    (point,) = expand(load_grid("-", ["method=ours", "suite=toy", f"hparams={folder}", f"results_dir={tmp_path}"]))
    assert set(selected) <= set(point[1])
    (run,) = compose_runs([point])
    assert {k: run.dir.config["method"][k] for k in OURS.search} == values(selected)
    # A point that sets a tuned key needs a selection tuned with that key held.
    with pytest.raises(GridError, match=r"no selection for 'ours@meta_lr=0.5'; selected: ours \(run benchmark.tune "
                                        r"method=ours method.meta_lr=0.5 first\)"):
        expand(load_grid("-", ["method=ours", "suite=toy", f"hparams={folder}", "method.meta_lr=0.5"]))

    with pytest.raises(GridError, match="reptile"):
        expand(load_grid("-", ["method=ours,reptile", "suite=toy", f"hparams={folder}"]))
    with pytest.raises(GridError, match="nowhere"):
        load_grid("-", ["method=ours", "suite=toy", f"hparams={tmp_path / 'nowhere'}"])
    # Selections apply to their own suite only, and never to a seed they were tuned on.
    with pytest.raises(GridError, match="suite 'toy', this grid runs suite 'glyphs'"):
        expand(load_grid("-", ["method=ours", f"hparams={folder}"]))
    with pytest.raises(GridError, match="seed: 100 is a tuning seed"):
        expand(load_grid("-", ["method=ours", "suite=toy", "seed=0,100", f"hparams={folder}"]))


def sweep_runs(*cli):
    grid = load_grid("-", list(cli))
    runs = compose_runs(expand(grid))
    check_selected(grid, runs)
    return runs


def test_a_selection_tuned_at_another_horizon_is_refused_naming_both_values(tuned, tmp_path):
    folder = tuned[0] / "selected" / "toy"
    cli = ["method=ours", "suite=toy", f"hparams={folder}", f"results_dir={tmp_path}", "seed=0", "metatest.steps=3"]
    assert len(sweep_runs(*cli, "train.steps=10", "metatest.at_steps=[5]", "runner.threads=2")) == 1
    with pytest.raises(GridError, match=r"ours.yaml was tuned in another experiment: train.steps=10 there, 20 here.*"
                                        "hparams_any_horizon=true"):
        sweep_runs(*cli, "train.steps=20")
    with pytest.raises(GridError, match=r"model.width=16 there, 8 here"):
        sweep_runs(*cli, "train.steps=10", "model.width=8")
    (run,) = sweep_runs(*cli, "train.steps=20", "hparams_any_horizon=true")
    assert run.dir.config["train"]["steps"] == 20
    # A file written before selections recorded their experiment: its horizon, from its shared overrides.
    old = tmp_path / "old"
    old.mkdir()
    record = {k: v for k, v in selection_of(tuned[0]).items() if k != "experiment"}
    (old / "ours.yaml").write_text(yaml.safe_dump({**record, "shared_overrides": ["train.steps=10"]}))
    cli[2] = f"hparams={old}"
    assert len(sweep_runs(*cli, "train.steps=10")) == 1
    with pytest.raises(GridError, match="train.steps=10 there, 400 here"):
        sweep_runs(*cli, "train.steps=400")


def test_a_tune_with_a_key_held_tunes_the_rest_into_its_own_file_and_the_sweep_takes_it(tuned, tmp_path):
    """A K study: method.reset_every=3 held, beta tuned; ours.yaml untouched; a grid with a K axis
    takes each K's own file and refuses a K without one."""
    results = copy_of(tuned, tmp_path)
    main_file = results / "selected" / "toy" / "ours.yaml"
    before = main_file.read_text()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["method=ours", "trials=2", "seeds=[100]", *TINY, "method.reset_every=3",
                     f"results_dir={results}"])
    assert code == 0, out.getvalue()
    assert main_file.read_text() == before
    study = yaml.safe_load((results / "selected" / "toy" / "ours@reset_every=3.yaml").read_text())
    assert study["fixed"] == {"method.reset_every": 3}
    assert study["search_space"] == {"method.meta_lr": "log-uniform [0.001, 10]"}
    assert all(values(r["overrides"])["reset_every"] == 3 for r in study["table"])
    assert len({values(r["overrides"])["meta_lr"] for r in study["table"]}) == 2
    assert study["experiment"]["method.reset_every"] == 3
    folder = results / "selected" / "toy"
    runs = sweep_runs("method=ours", "suite=toy", "method.reset_every=3", "seed=0", f"hparams={folder}",
                      *TINY[1:], f"results_dir={tmp_path}")
    assert [o for o in runs[0].overrides if o.startswith("method.")] == study["overrides"]
    with pytest.raises(GridError, match=r"no selection for 'ours@reset_every=4'"):
        sweep_runs("method=ours", "suite=toy", "method.reset_every=3,4", "seed=0", f"hparams={folder}", *TINY[1:])
    # Two files selecting the same thing: named, never one silently replacing the other.
    (folder / "zz.yaml").write_text(main_file.read_text())
    with pytest.raises(SelectionError, match=r"ours.yaml and \S*zz.yaml both select 'ours'"):
        read_dir(folder, METHODS.names())


def test_the_committed_selections_are_the_defaults():
    """benchmark/conf/selected/glyphs/<method>.yaml holds each method's default on glyphs: the
    protocol's choice is what a plain run uses."""
    committed = read_dir(ROOT / "benchmark" / "conf" / "selected" / "glyphs", METHODS.names())
    assert committed.suite == "glyphs" and set(committed.overrides) == set(METHODS.names())
    for name, overrides in committed.overrides.items():
        default = compose_config([f"method={name}"]).method
        assert {k: getattr(default, k) for k in values(overrides)} == values(overrides), name


@pytest.mark.parametrize("damage", ["truncated", "null", "nan"])
def test_a_damaged_finished_trial_is_shown_as_unreadable_not_a_crash(tuned, tmp_path, capsys, damage):
    """A done run whose summary.json is cut short, holds "validation_mean": null or NaN (not JSON):
    the tune and its --status name the file, show the seed as unreadable and score no trial on it."""
    results = copy_of(tuned, tmp_path)
    path = sorted((results / "toy" / "ours").glob("*/summary.json"))[0]
    text = path.read_text()
    s = json.loads(text)
    path.write_text({"truncated": text[: len(text) // 2], "null": json.dumps({**s, "validation_mean": None}),
                     "nan": json.dumps({**s, "validation_mean": float("nan")})}[damage])
    for extra in (["--status"], []):
        assert main(["method=ours", "trials=3", *TINY, f"results_dir={results}", *extra]) == 0
        out = capsys.readouterr().out
        (line,) = [line for line in out.splitlines() if "unrd." in line]
        assert "mean        " in line  # no score
        assert f"unreadable: {path} is unreadable" in out
        assert "not selected yet" in out or extra
