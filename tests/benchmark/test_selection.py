"""Selection files: the best trial on validation, the winner's spread and margin, round trips
and bad files named."""
import math

import pytest

from benchmark.sweeps.selection import SelectionError, Trial, read_dir, select, selection_record, write
from methods import METHODS
from methods.search import describe

OURS = METHODS.get("ours")


def trial(index, *scores, diverged=()):
    seeds = list(range(100, 100 + len(scores) + len(diverged)))
    t = Trial(index, [f"method.meta_lr={index}"], {s: f"id{index}_{s}" for s in seeds})
    t.validation = {s: v for s, v in zip(seeds, scores) if v is not None}
    t.diverged = list(seeds[len(scores):])
    return t


def test_select_takes_the_best_mean_the_earliest_on_a_tie_and_never_a_diverged_trial():
    assert select([trial(0, 0.5, 0.7), trial(1, 0.8, 0.3), trial(2, 0.6, 0.61)]).index == 2
    assert select([trial(0, 0.5), trial(1, 0.7), trial(2, 0.7)]).index == 1
    assert select([trial(0, 0.5), trial(1, 0.9, diverged=[1])]).index == 0
    assert math.isnan(trial(1, 0.9, None).score) and not trial(1, 0.9, None).complete
    assert select([trial(0, diverged=[1])]) is None and select([]) is None


def test_a_selection_file_round_trips_and_a_bad_one_is_named(tmp_path):
    rows = [trial(0, 0.5), trial(1, 0.7)]
    record = selection_record("ours", "toy", rows, select(rows), [100], describe(OURS.search), ["toy_v"], [])
    assert (record["trial"], record["score"], record["trials"]) == (1, 0.7, 2)
    write(tmp_path, record)
    back = read_dir(tmp_path, METHODS.names())
    assert (back.suite, back.overrides, back.tuning_seeds) == ("toy", {"ours": ["method.meta_lr=1"]}, {100})
    (tmp_path / "bad.yaml").write_text("method: bad\noverrides: method.meta_lr\n")
    with pytest.raises(SelectionError, match="bad.yaml"):
        read_dir(tmp_path, METHODS.names())
    (tmp_path / "bad.yaml").unlink()
    write(tmp_path, {**record, "method": "nomethod"})
    with pytest.raises(SelectionError, match="unknown method 'nomethod'; valid: ours"):
        read_dir(tmp_path, METHODS.names())
    (tmp_path / "nomethod.yaml").unlink()
    write(tmp_path, {**record, "method": "reptile", "suite": "glyphs"})
    with pytest.raises(SelectionError, match="mixes selections of suites"):
        read_dir(tmp_path, METHODS.names())
    (tmp_path / "empty").mkdir()
    with pytest.raises(SelectionError, match="holds no"):
        read_dir(tmp_path / "empty", METHODS.names())


def test_the_selection_file_gives_the_spread_the_margin_and_separation():
    rows = [trial(0, 0.60, 0.64), trial(1, 0.61, 0.62), trial(2, 0.40, 0.42)]
    record = selection_record("ours", "toy", rows, select(rows), [100, 101], {}, ["toy_v"], [])
    assert record["trial"] == 0 and record["runner_up"] == 1
    assert record["spread"] == pytest.approx(0.04) and record["margin"] == pytest.approx(0.005)
    assert record["separated"] is False
    rows = [trial(0, 0.70, 0.71), trial(1, 0.61, 0.62)]
    record = selection_record("ours", "toy", rows, select(rows), [100, 101], {}, ["toy_v"], [])
    assert record["separated"] is True and record["margin"] == pytest.approx(0.09)
    one = [trial(0, 0.7), trial(1, 0.6)]
    assert selection_record("ours", "toy", one, one[0], [100], {}, [], [])["separated"] is None
    # A method with nothing to tune: its trials are one configuration, with no runner-up (the tune
    # of 2026-12-05 printed "not separated" for multi-task, against its own copy).
    same = [Trial(t, [], {100: "a", 101: "b"}, {100: 0.6, 101: 0.66}) for t in range(3)]
    record = selection_record("multitask", "toy", same, same[0], [100, 101], {}, [], [])
    assert (record["runner_up"], record["margin"], record["separated"]) == (None, None, None)
