"""Few-shot episodes (``metatest.episodes``), drawn with learn2learn over a target's test split."""
from __future__ import annotations

import random

import pytest
import torch

from analysis.collect import collect
from benchmark import episodes
from benchmark.core import episodes as scoring
from benchmark.runtime.execute import execute
from benchmark.runtime.storage import run_id
from helpers import make_config
from omegaconf import OmegaConf
from tasks.registry import TASKS

pytest.importorskip("learn2learn")

# toy_e has 4 classes and toy_f 3, 16 test images each
EPISODES = ["metatest.episodes=4", "metatest.episode_ways=3", "metatest.episode_shots=[1,2]",
            "metatest.episode_queries=5", "metatest.episode_steps=5"]
TINY = ["suite=toy", "train.steps=10", "metatest.steps=3"]


@pytest.fixture(scope="module")
def toy_e():
    return TASKS.get("toy_e").load(None)


def test_an_episode_is_n_way_k_shot_with_its_queries(toy_e):
    tasks = scoring.task_set(toy_e.test_x, toy_e.test_y, ways=3, shots=2, queries=5)
    sx, sy, qx, qy = scoring.episode(tasks, 2, seed=0, target="toy_e", index=0)
    assert sx.dtype == torch.uint8 and sx.shape == (3 * 2, 1, 12, 12) and qx.shape == (3 * 5, 1, 12, 12)
    assert torch.bincount(sy).tolist() == [2, 2, 2] and torch.bincount(qy).tolist() == [5, 5, 5]
    rows = lambda x: {bytes(img.numpy()) for img in x}  # noqa: E731
    assert len(rows(sx) | rows(qx)) == 3 * 7, "support and queries are distinct images"
    test = rows(toy_e.test_x)
    assert rows(sx) <= test and rows(qx) <= test  # from the test split only


def test_episodes_depend_on_seed_target_and_index_alone(toy_e):
    """Every method, every repeat, whatever Python's random state: the same episode."""
    tasks = scoring.task_set(toy_e.test_x, toy_e.test_y, ways=3, shots=1, queries=5)
    first = scoring.episode(tasks, 1, seed=0, target="toy_e", index=3)
    random.seed(12345)
    state = random.getstate()
    again = scoring.episode(scoring.task_set(toy_e.test_x, toy_e.test_y, 3, 1, 5), 1, 0, "toy_e", 3)
    assert random.getstate() == state, "the caller's random state is restored"
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    other = scoring.episode(tasks, 1, seed=0, target="toy_e", index=4)
    assert not torch.equal(first[2], other[2])


def test_every_method_is_scored_on_identical_episodes(tmp_path, monkeypatch):
    seen: dict[str, list] = {}
    draw = scoring.episode

    def recording(tasks, shots, seed, target, index):
        out = draw(tasks, shots, seed, target, index)
        seen.setdefault(method, []).append(out)
        return out

    monkeypatch.setattr(scoring, "episode", recording)
    for method in ("ours", "scratch"):
        execute(make_config(*TINY, *EPISODES, f"method={method}", f"results_dir={tmp_path}"), progress=False)
    assert len(seen["ours"]) == 2 * 2 * 4  # targets x shots x episodes
    for a, b in zip(seen["ours"], seen["scratch"]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("override,key", [("metatest.episode_ways=4", "metatest.episode_ways"),  # toy_f: 3 classes
                                          ("metatest.episode_queries=15", "metatest.episode_shots")])
def test_an_impossible_request_fails_naming_the_key_before_anything_is_written(tmp_path, override, key):
    cfg = make_config(*TINY, *EPISODES, override, f"results_dir={tmp_path}")
    with pytest.raises(scoring.ImpossibleEpisodes, match=key):
        execute(cfg, progress=False)
    assert not tmp_path.exists() or not list(tmp_path.rglob("config.yaml"))


def test_rows_in_the_run_equal_rows_added_later_and_stay_out_of_the_curves(tmp_path, capsys):
    """metatest.episodes in the run, or benchmark.episodes on a finished run without them: the
    same rows. A second call replaces its rows; the folder stays readable and consistent."""
    with_episodes = execute(make_config(*TINY, *EPISODES, f"results_dir={tmp_path / 'a'}"), progress=False)
    plain = execute(make_config(*TINY, f"results_dir={tmp_path / 'b'}"), progress=False)
    assert with_episodes.id != plain.id
    overrides = [o for o in EPISODES] + ["runner.threads=1"]
    for _ in range(2):
        assert episodes.main([str(plain.path), *overrides]) == 0
    assert "toy_e" in capsys.readouterr().out
    rows = lambda run: [r for r in run.read("metatest") if r.get("protocol") == "episodes"]  # noqa: E731
    assert rows(plain) == rows(with_episodes) and len(rows(plain)) == 2 * 2
    assert {(r["target"], r["ways"], r["shots"], r["episodes"]) for r in rows(plain)} == {
        (t, 3, k, 4) for t in ("toy_e", "toy_f") for k in (1, 2)}
    for r in rows(plain):
        assert r["ci95"] == pytest.approx(1.96 * r["sd"] / 2)
    found = collect(tmp_path / "b")
    assert not found.unreadable and len(found.runs) == 2
    assert len(found.curves) == 2 and len(found.episodes) == 4  # the final phi's rows only; episodes apart
    assert "metatest.episodes" not in found.swept


def test_the_command_refuses_keys_that_would_change_the_run(tmp_path, capsys):
    assert episodes.main([str(tmp_path), "train.steps=5"]) == 2
    assert "train.steps" in capsys.readouterr().err
    assert episodes.main([str(tmp_path), "metatest.episodes=2"]) == 2
    assert "not a finished run folder" in capsys.readouterr().err
    assert episodes.main(["--help"]) == 0 and capsys.readouterr().out.startswith("usage: python -m benchmark.episodes")


def test_episode_keys_at_their_defaults_keep_every_run_id():
    ids = {run_id(OmegaConf.to_container(OmegaConf.structured(make_config(*extra)), resolve=True))
           for extra in ([], ["metatest.episodes=0", "metatest.episode_shots=[1,5]", "metatest.episode_body=frozen"])}
    assert len(ids) == 1
    with pytest.raises(ValueError, match="metatest.episode_body"):
        make_config("metatest.episode_body=thaw")


def test_episodes_see_the_runs_data_channels_in_the_run_and_afterwards(tmp_path):
    """data.channels=3 turns the grey toy tasks into RGB: phi's body takes 3 channels, and so
    must every episode's, in the run and in benchmark.episodes (which keeps the run's data keys)."""
    run = execute(make_config(*TINY, *EPISODES, "data.channels=3", f"results_dir={tmp_path}"), progress=False)
    first = [r for r in run.read("metatest") if r.get("protocol") == "episodes"]
    assert run.done and len(first) == 2 * 2
    assert episodes.main([str(run.path), *EPISODES, "runner.threads=1"]) == 0
    assert [r for r in run.read("metatest") if r.get("protocol") == "episodes"] == first
    assert episodes.main([str(run.path), "data.channels=1"]) == 2  # not this command's to change
