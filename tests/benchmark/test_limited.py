"""Limited data (``metatest.train_sizes``): the final phi meta-tested on a stratified subset of
each target's training images, the same subset for every method."""
from __future__ import annotations

import pytest
import torch

from analysis.collect import collect
from benchmark.compose import compose_config
from benchmark.core.metatest import TooFewImages, limited
from benchmark.runtime.execute import execute
from benchmark.runtime.storage import run_id
from omegaconf import OmegaConf
from tasks.registry import Splits

TINY = ["suite=toy", "runner.threads=1", "train.steps=10", "metatest.steps=3"]


def splits(per_class=(6, 4, 5)) -> Splits:
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    x = torch.arange(len(y), dtype=torch.uint8).view(-1, 1, 1, 1)  # x names its row
    return Splits(x, y, torch.zeros(3, 1, 1, 1, dtype=torch.uint8), torch.tensor([0, 1, 2]))


def test_a_subset_holds_n_images_of_every_class_drawn_by_seed_task_and_size_alone():
    full = splits()
    sub = limited(full, 3, seed=0, task="t")
    assert torch.bincount(sub.train_y).tolist() == [3, 3, 3]
    rows = sub.train_x.flatten().long()
    assert torch.equal(full.train_y[rows], sub.train_y)  # each kept image keeps its label
    assert len(set(rows.tolist())) == 9  # without replacement
    assert sub.test_x is full.test_x and sub.test_y is full.test_y  # the test split is untouched
    again = limited(full, 3, seed=0, task="t")
    assert torch.equal(again.train_x, sub.train_x)
    others = [limited(full, 3, seed=s, task=t).train_x for s, t in ((1, "t"), (0, "u"))]
    assert any(not torch.equal(o, sub.train_x) for o in others)
    assert torch.equal(limited(full, 4, seed=0, task="t").train_y.bincount(), torch.tensor([4, 4, 4]))


def test_a_run_meta_tests_the_final_phi_on_each_size_and_its_full_results_are_unchanged(tmp_path):
    plain = execute(compose_config([*TINY, f"results_dir={tmp_path}"]), progress=False)
    cfg = compose_config([*TINY, f"results_dir={tmp_path}", "metatest.train_sizes=[2,5]"])
    run = execute(cfg, progress=False)
    assert run.id != plain.id  # another request, another run
    assert run_id(OmegaConf.to_container(OmegaConf.structured(compose_config(
        [*TINY, f"results_dir={tmp_path}", "metatest.train_sizes=[]"])), resolve=True)) == plain.id
    rows = run.read("metatest")
    sized = sorted((r["train_size"], r["target"]) for r in rows if "train_size" in r)
    assert sized == [(2, "toy_e"), (2, "toy_f"), (5, "toy_e"), (5, "toy_f")]
    assert all(r["phi_step"] == "final" and r["role"] == "target" for r in rows if "train_size" in r)
    assert run.summary()["target_accuracy"] == plain.summary()["target_accuracy"]  # same phi, same full meta-test

    c = collect(tmp_path)
    assert sorted(c.limited["train_size"].unique().tolist()) == [2, 5] and len(c.limited) == 4
    assert "train_size" not in c.curves.columns and len(c.curves) == 4  # final rows of the two runs only
    assert "metatest.train_sizes" not in c.swept  # it does not change phi


def test_a_size_larger_than_a_target_class_fails_naming_key_and_target_before_anything_is_written(tmp_path):
    cfg = compose_config([*TINY, f"results_dir={tmp_path}", "metatest.train_sizes=[2,99]"])
    with pytest.raises(TooFewImages, match=r"metatest.train_sizes: \[99\] .* target toy_e"):
        execute(cfg, progress=False)
    assert not any(tmp_path.rglob("config.yaml"))
    with pytest.raises(ValueError, match="metatest.train_sizes: must be positive"):
        compose_config([*TINY, "metatest.train_sizes=[0]"])


def test_the_report_tabulates_limited_data_and_regenerates_it_from_its_own_folder(tmp_path):
    from analysis.report import main

    execute(compose_config([*TINY, f"results_dir={tmp_path}", "metatest.train_sizes=[2]"]), progress=False)
    assert main([str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "#### Limited target data" in summary and "| 2 per class | All |" in summary
    assert (tmp_path / "report" / "limited.csv").exists() and (tmp_path / "report" / "limited.tex").exists()
    assert main([str(tmp_path / "report")]) == 0  # from its CSVs alone
    assert (tmp_path / "report" / "summary.md").read_text().split("\n", 3)[3] == summary.split("\n", 3)[3]
