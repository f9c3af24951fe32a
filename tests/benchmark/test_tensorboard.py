"""TensorBoard scalars (``log.tensorboard=true``): read back with EventAccumulator; a resumed
run continues the same curves without duplicated points."""
from __future__ import annotations

from collections import Counter

import pytest

from benchmark.runtime.execute import execute
from benchmark.runtime.storage import run_id
from helpers import make_config
from omegaconf import OmegaConf

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TB = ["suite=toy", "train.steps=30", "checkpoint.every=10", "metatest.steps=3", "metatest.at_steps=[10]",
      "log.tensorboard=true"]


def scalars(run) -> dict[str, list[tuple[int, float]]]:
    (folder,) = (run.path / "tb").iterdir()
    assert folder.name == f"ours_seed0_{run.id}"  # TensorBoard names the run by its path
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = execute(make_config(*TB, f"results_dir={tmp_path_factory.mktemp('full')}"), progress=False)
    return run, scalars(run)


def test_a_run_writes_the_expected_tags_at_cumulative_inner_steps(uninterrupted):
    run, tags = uninterrupted
    sources, log_steps = ["toy_a", "toy_b", "toy_c", "toy_d"], [5, 10, 15, 20, 25, 30]
    expected = {*(f"train/{what}/{t}" for what in ("loss", "acc") for t in sources), "train/phi_change",
                "time/wall_seconds", "metatest/toy_e", "metatest/toy_f", "validation/toy_v"}
    assert set(tags) == expected
    assert [s for s, _ in tags["train/loss/toy_a"]] == [4 * s for s in log_steps]  # 4 learners per step
    assert [s for s, _ in tags["metatest/toy_e"]] == [40, 120]  # phi at step 10, then the final phi
    accuracy = {r["phi_step"]: r["accuracy"] for r in run.read("metatest") if r["target"] == "toy_e"}
    assert [v for _, v in tags["metatest/toy_e"]] == pytest.approx([accuracy[10], accuracy["final"]])
    assert all(v > 0 for _, v in tags["train/phi_change"])  # CTS moves phi every step


def test_a_resumed_run_has_no_duplicated_steps(tmp_path, monkeypatch, uninterrupted):
    """Crash at step 27: the checkpoint is step 20 and step 25 was already logged; the
    resume logs 25 again, and the purge drops the first attempt's point."""
    cfg = make_config(*TB, f"results_dir={tmp_path}")
    monkeypatch.setenv("LSML_FAULT", "0:27")
    with pytest.raises(RuntimeError, match="injected fault"):
        execute(cfg, progress=False)
    monkeypatch.delenv("LSML_FAULT")
    run = execute(cfg, progress=False)
    tags = scalars(run)
    full = uninterrupted[1]
    assert set(tags) == set(full)
    for tag, points in tags.items():
        steps = [s for s, _ in points]
        assert not [s for s, n in Counter(steps).items() if n > 1], tag
        assert steps == [s for s, _ in full[tag]], tag
        if not tag.startswith("time/"):  # the losses, accuracies and phi's change resume bit-identically
            assert [v for _, v in points] == pytest.approx([v for _, v in full[tag]], rel=1e-6), tag


def test_tensorboard_is_off_by_default_and_not_part_of_a_run_id(tmp_path):
    cfg = make_config("suite=toy", "train.steps=5", "metatest.steps=2", f"results_dir={tmp_path}")
    assert cfg.log.tensorboard is False
    run = execute(cfg, progress=False)
    assert not (run.path / "tb").exists()
    on = make_config("suite=toy", "train.steps=5", "metatest.steps=2", f"results_dir={tmp_path}", "log.tensorboard=true")
    assert run_id(OmegaConf.to_container(OmegaConf.structured(on), resolve=True)) == run.id
