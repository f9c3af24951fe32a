"""Search spaces and their draws: distinct, deterministic scrambled-Sobol draws, the K ladder
capped by the horizon, the edge flag, and today's shared ranges."""
import copy
import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from benchmark.config import validate
from helpers import ROOT
from methods import METHODS
from methods.search import (INTERPOLATION, META_GRADIENT, Choice, LogUniform, Resets, describe, draws, edges,
                            resolve)

OURS = METHODS.get("ours")


SPACE = {"meta_lr": LogUniform(1e-3, 3.0), "reset_every": Choice(10, 25, 50, 100, 200)}


def test_draws_are_distinct_deterministic_and_prefixes_of_each_other():
    eight = draws(SPACE, "key", 8)
    assert eight == draws(dict(reversed(SPACE.items())), "key", 8)  # key order does not matter
    assert len({tuple(sorted(d.items())) for d in eight}) == 8 and all(set(d) == set(SPACE) for d in eight)
    assert draws(SPACE, "key", 12)[:8] == eight  # more trials keep the first ones
    assert draws(SPACE, "other key", 8) != eight
    assert draws(SPACE, "key", 3, taken=[eight[0]])[0] != eight[0]  # a taken configuration is skipped
    assert draws({}, "key", 3) == [{}, {}, {}]


def test_a_space_too_small_for_the_trials_is_refused_by_name_and_a_small_one_is_covered():
    four = {"reset_every": Choice(25, 50, 100, 200)}
    with pytest.raises(ValueError, match=r"choice \{25, 50, 100, 200\}.* 4 configurations, fewer than the 8"):
        draws(four, "key", 8)
    assert sorted(d["reset_every"] for d in draws(four, "key", 4)) == [25, 50, 100, 200]
    # With a continuous axis, 8 trials over a single choice axis of 4 values are 8 distinct draws.
    got = draws({**four, "meta_lr": LogUniform(0.01, 1.0)}, "key", 8)
    assert len({tuple(sorted(d.items())) for d in got}) == 8
    assert sorted({d["reset_every"] for d in got}) == [25, 50, 100, 200]  # Sobol: each value twice
    assert sorted(d["reset_every"] for d in got) == [25, 25, 50, 50, 100, 100, 200, 200]


def test_draws_do_not_depend_on_the_process():
    """Every machine draws the same configurations: no per-process hash seeds the draw.
    (methods/search.py is loaded alone: a fresh process without torch starts in a blink.)"""
    code = ("import importlib.util, json; spec = importlib.util.spec_from_file_location('s', 'methods/search.py'); "
            "s = importlib.util.module_from_spec(spec); "
            "import sys; sys.modules['s'] = s; spec.loader.exec_module(s); "
            "space = {'meta_lr': s.LogUniform(0.001, 3.0), 'reset_every': s.Choice(10, 25, 50, 100, 200), "
            "'reg_lambda': s.LogUniform(0.1, 10.0)}; "
            "print(json.dumps(s.draws(space, 'glyphs imaml', 8)))")
    space = {"meta_lr": LogUniform(0.001, 3.0), "reset_every": Choice(10, 25, 50, 100, 200),
             "reg_lambda": LogUniform(0.1, 10.0)}
    here = draws(space, "glyphs imaml", 8)
    for hash_seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONHASHSEED": hash_seed}, check=False)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == here


@pytest.mark.parametrize("low,high", [(0.001, 3.0), (0.003, 10.0), (0.1, 10.0)])
def test_log_uniform_draws_lie_in_range_log_uniformly_at_two_digits(low, high):
    got = np.array([d["x"] for d in draws({"x": LogUniform(low, high)}, "key", 64)])
    assert all(float(f"{v:.2g}") == v for v in got)  # readable run configs
    assert got.min() >= low * (1 - 0.05) and got.max() <= high * (1 + 0.05)  # 2 digits round by < 5%
    pos = np.sort((np.log(got) - math.log(low)) / (math.log(high) - math.log(low)))
    # Sobol: every eighth of the log-range holds 8 of the 64 draws, give or take rounding.
    counts = np.histogram(pos, bins=8, range=(-0.02, 1.02))[0]
    assert counts.min() >= 6 and counts.max() <= 10, counts


def test_the_reset_ladder_is_capped_at_half_the_horizon():
    assert Resets().at(400) == Choice(10, 25, 50, 100, 200)
    assert Resets().at(2000) == Choice(10, 25, 50, 100, 200, 500, 1000)
    assert Resets().at(20) == Choice(10) and Resets().at(30) == Choice(10)
    assert Resets().at(10) == Choice(5) and Resets().at(1) == Choice(1)
    for steps in (1, 7, 20, 30, 400, 2000, 5000):
        assert max(Resets().at(steps).values) <= max(1, steps // 2)
    assert resolve(OURS.search, 400)["reset_every"] == Choice(10, 25, 50, 100, 200)
    assert resolve(OURS.search, 400)["meta_lr"] is OURS.search["meta_lr"]


def test_leaps_ladder_reaches_below_its_400_step_selection():
    """Leap chose K = 10, the shared ladder's smallest rung, at 400 steps: its own ladder goes to 2,
    with the reason beside it, and the other methods keep the shared one."""
    leap = METHODS.get("leap").search["reset_every"]
    assert resolve(METHODS.get("leap").search, 400)["reset_every"] == Choice(2, 5, 10, 25, 50, 100, 200)
    assert "smallest" in leap.why and "2, 5, 10" in str(leap)
    assert resolve(OURS.search, 400)["reset_every"].values[0] == 10


def test_the_edge_flag_marks_the_outer_tenth_of_a_log_range_and_the_end_choices():
    space = {"meta_lr": LogUniform(1e-3, 1.0), "reset_every": Choice(10, 25, 50, 100, 200)}
    # log10 range -3..0: the outer 10% are below 10**-2.7 = 0.002 and above 10**-0.3 = 0.5
    assert edges(space, {"meta_lr": 0.03, "reset_every": 50}) == []
    assert edges(space, {"meta_lr": 0.0019, "reset_every": 50}) == [
        "method.meta_lr=0.0019 in the bottom 10% of log-uniform [0.001, 1]"]
    assert edges(space, {"meta_lr": 0.6, "reset_every": 200}) == [
        "method.meta_lr=0.6 in the top 10% of log-uniform [0.001, 1]",
        "method.reset_every=200 the largest of choice {10, 25, 50, 100, 200}"]
    assert edges(space, {"meta_lr": 0.03, "reset_every": 10}) == [
        "method.reset_every=10 the smallest of choice {10, 25, 50, 100, 200}"]
    assert edges({"k": Choice(10, 20)}, {"k": 20}) == []  # two values: no interior to prefer


def test_no_committed_selection_sits_on_an_edge_of_its_range_unflagged():
    """Each committed selection file flags exactly the edges its values sit on in today's space at
    its horizon (400 steps on glyphs); only ANIL's K = 200, half the horizon, is one."""
    flagged = {}
    for path in sorted((ROOT / "benchmark" / "conf" / "selected" / "glyphs").glob("*.yaml")):
        record = yaml.safe_load(path.read_text())
        space = resolve(METHODS.get(record["method"]).search, 400)
        values = {k.removeprefix("method."): yaml.safe_load(v) for k, _, v in
                  (o.partition("=") for o in record["overrides"])}
        assert record.get("edges", []) == edges(space, values), path.name
        flagged.update({record["method"]: e for e in record.get("edges", [])})
    assert list(flagged) == ["anil"] and "largest" in flagged["anil"]


def test_choice_draws_every_value_and_nothing_else():
    got = [d["k"] for d in draws({"k": Choice(25, 50, 100, 200), "x": LogUniform(0.01, 1)}, "key", 64)]
    assert sorted(set(got)) == [25, 50, 100, 200]
    assert Choice(1, 2) == Choice(1, 2) and Choice(1, 2) != Choice(2, 1)


def test_bad_search_spaces_are_refused():
    for bad in [lambda: LogUniform(1.0, 0.5), lambda: LogUniform(0.0, 1.0), lambda: Choice()]:
        with pytest.raises(ValueError):
            bad()
    assert describe(OURS.search) == {"method.meta_lr": "log-uniform [0.001, 10]",
                                     "method.reset_every": "choice {10, 25, 50, 100, 200, 500, 1000} up to "
                                                           "train.steps / 2"}


def test_every_method_tunes_keys_of_its_config_and_its_draws_validate():
    """8 draws at 400 steps on glyphs are valid run configs of each method: one compose per
    method, then each draw set on it (interpolations such as Reptile's aggregate_every =
    reset_every still resolve) and validated as a run config is."""
    with initialize_config_module("benchmark.conf", version_base="1.3"):
        for name in METHODS.names():
            entry = METHODS.get(name)
            fields = {f.name for f in dataclasses.fields(entry.config)}
            assert set(entry.search) <= fields - {"name"}, name
            assert all(isinstance(d, (LogUniform, Choice, Resets)) for d in entry.search.values()), name
            base = compose("config", overrides=[f"method={name}", "suite=glyphs"])
            for drawn in draws(resolve(entry.search, 400), name, 8):
                cfg = copy.deepcopy(base)
                for key, value in drawn.items():
                    OmegaConf.update(cfg, f"method.{key}", value)
                method = validate(cfg).method
                assert {k: getattr(method, k) for k in drawn} == drawn, name




def test_no_draws_asked_is_no_draws():
    """trials=1 with include_default asks for the default and 0 draws."""
    assert draws({"meta_lr": LogUniform(0.01, 1.0)}, "key", 0) == []
